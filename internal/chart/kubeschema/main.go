// Command kubeschema turns the Kubernetes OpenAPI v2 document into the
// standalone, strict JSON schemas kubeconform reads, so that rendered
// manifests can be validated without network access.
//
//	go mod download -json k8s.io/kubernetes@v1.37.2   # Dir/api/openapi-spec/swagger.json
//	go run ./internal/chart/kubeschema -in .../swagger.json -out $REEL_CACHE/kubeschemas/v1.37.2-standalone-strict
//	kubeconform -strict -kubernetes-version 1.37.2 -schema-location $REEL_CACHE/kubeschemas …
//
// One file per group/version/kind, named the way kubeconform looks files up
// (<kind>[-<group prefix>]-<version>.json, lower case). Each file holds the
// kind's schema plus only the definitions it reaches, with three changes
// that make the schemas say what the API server accepts:
//   - objects with declared properties reject undeclared ones
//     (additionalProperties: false; the "strict" in the directory name),
//   - int-or-string and Quantity accept a number or a string,
//   - apiVersion and kind are pinned to the file's group/version/kind.
//
// Descriptions are dropped: they are most of the bytes and kubeconform never
// prints them.
package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
)

const (
	quantityDef    = "io.k8s.apimachinery.pkg.api.resource.Quantity"
	intOrStringDef = "io.k8s.apimachinery.pkg.util.intstr.IntOrString"
	refPrefix      = "#/definitions/"
)

type gvk struct {
	Group, Version, Kind string
}

func main() {
	in := flag.String("in", "", "the Kubernetes swagger.json (OpenAPI v2)")
	out := flag.String("out", "", "output directory, e.g. …/v1.37.2-standalone-strict")
	flag.Parse()
	if *in == "" || *out == "" {
		fmt.Fprintln(os.Stderr, "usage: kubeschema -in swagger.json -out DIR")
		os.Exit(2)
	}
	n, err := run(*in, *out)
	if err != nil {
		fmt.Fprintln(os.Stderr, "kubeschema:", err)
		os.Exit(1)
	}
	fmt.Fprintf(os.Stderr, "kubeschema: wrote %d schemas to %s\n", n, *out)
}

func run(in, out string) (int, error) {
	b, err := os.ReadFile(in)
	if err != nil {
		return 0, err
	}
	var doc struct {
		Definitions map[string]map[string]any `json:"definitions"`
	}
	if err := json.Unmarshal(b, &doc); err != nil {
		return 0, fmt.Errorf("%s: %w", in, err)
	}
	if len(doc.Definitions) == 0 {
		return 0, fmt.Errorf("%s: no definitions: not a Kubernetes OpenAPI v2 document", in)
	}

	defs := make(map[string]any, len(doc.Definitions))
	refs := make(map[string][]string, len(doc.Definitions)) // definition → definitions it names
	for name, d := range doc.Definitions {
		var seen []string
		defs[name] = convert(d, &seen)
		refs[name] = seen
	}
	number := map[string]any{"oneOf": []any{map[string]any{"type": "string"}, map[string]any{"type": "number"}}}
	defs[quantityDef] = number
	defs[intOrStringDef] = map[string]any{"oneOf": []any{map[string]any{"type": "string"}, map[string]any{"type": "integer"}}}
	refs[quantityDef], refs[intOrStringDef] = nil, nil

	if err := os.MkdirAll(out, 0o755); err != nil {
		return 0, err
	}
	names := make([]string, 0, len(doc.Definitions))
	for name := range doc.Definitions {
		names = append(names, name)
	}
	sort.Strings(names)
	written := map[string]string{}
	for _, name := range names {
		for _, k := range gvks(doc.Definitions[name]) {
			file := fileName(k)
			if prev, dup := written[file]; dup {
				// Kinds shared by every group (DeleteOptions, WatchEvent)
				// collide on the group prefix; the first one wins.
				_ = prev
				continue
			}
			written[file] = name
			if err := writeSchema(filepath.Join(out, file), name, k, defs, refs); err != nil {
				return 0, err
			}
		}
	}
	return len(written), nil
}

// gvks reads x-kubernetes-group-version-kind.
func gvks(d map[string]any) []gvk {
	list, _ := d["x-kubernetes-group-version-kind"].([]any)
	var out []gvk
	for _, e := range list {
		m, _ := e.(map[string]any)
		g, _ := m["group"].(string)
		v, _ := m["version"].(string)
		k, _ := m["kind"].(string)
		if v != "" && k != "" {
			out = append(out, gvk{g, v, k})
		}
	}
	return out
}

// fileName mirrors kubeconform's lookup: kind, first label of the group, version.
func fileName(k gvk) string {
	s := strings.ToLower(k.Kind)
	if k.Group != "" {
		s += "-" + strings.ToLower(strings.Split(k.Group, ".")[0])
	}
	return s + "-" + strings.ToLower(k.Version) + ".json"
}

func apiVersion(k gvk) string {
	if k.Group == "" {
		return k.Version
	}
	return k.Group + "/" + k.Version
}

func writeSchema(path, name string, k gvk, defs map[string]any, refs map[string][]string) error {
	// The closure of definitions this kind reaches.
	need := map[string]bool{}
	stack := append([]string(nil), refs[name]...)
	for len(stack) > 0 {
		n := stack[len(stack)-1]
		stack = stack[:len(stack)-1]
		if need[n] {
			continue
		}
		if _, ok := defs[n]; !ok {
			return fmt.Errorf("%s: reference to unknown definition %s", name, n)
		}
		need[n] = true
		stack = append(stack, refs[n]...)
	}
	top := clone(defs[name]).(map[string]any)
	if props, ok := top["properties"].(map[string]any); ok {
		props["apiVersion"] = map[string]any{"type": "string", "enum": []any{apiVersion(k)}}
		props["kind"] = map[string]any{"type": "string", "enum": []any{k.Kind}}
	}
	top["$schema"] = "http://json-schema.org/draft-07/schema#"
	if len(need) > 0 {
		d := make(map[string]any, len(need))
		for n := range need {
			d[n] = defs[n]
		}
		top["definitions"] = d
	}
	b, err := json.Marshal(top)
	if err != nil {
		return err
	}
	return os.WriteFile(path, b, 0o644)
}

// convert rewrites one schema node: drops descriptions and extensions,
// closes objects that declare properties, records the definitions it names.
func convert(node map[string]any, refs *[]string) map[string]any {
	out := make(map[string]any, len(node))
	for k, v := range node {
		switch {
		case k == "description" || strings.HasPrefix(k, "x-"):
			continue
		case k == "$ref":
			s, _ := v.(string)
			*refs = append(*refs, strings.TrimPrefix(s, refPrefix))
			out[k] = v
		case k == "properties":
			props := map[string]any{}
			for p, ps := range v.(map[string]any) {
				props[p] = convert(ps.(map[string]any), refs)
			}
			out[k] = props
		case k == "items" || k == "additionalProperties" || k == "not":
			if m, ok := v.(map[string]any); ok {
				out[k] = convert(m, refs)
			} else {
				out[k] = v
			}
		case k == "allOf" || k == "anyOf" || k == "oneOf":
			var list []any
			for _, e := range v.([]any) {
				list = append(list, convert(e.(map[string]any), refs))
			}
			out[k] = list
		default:
			out[k] = v
		}
	}
	if f, _ := out["format"].(string); f == "int-or-string" {
		delete(out, "type")
		delete(out, "format")
		out["oneOf"] = []any{map[string]any{"type": "string"}, map[string]any{"type": "integer"}}
	}
	if _, hasProps := out["properties"]; hasProps {
		if _, set := out["additionalProperties"]; !set {
			out["additionalProperties"] = false
		}
	}
	// A $ref with siblings: keep only the reference (draft-07 ignores siblings anyway).
	if r, ok := out["$ref"]; ok {
		return map[string]any{"$ref": r}
	}
	return out
}

func clone(v any) any {
	switch t := v.(type) {
	case map[string]any:
		m := make(map[string]any, len(t))
		for k, e := range t {
			m[k] = clone(e)
		}
		return m
	case []any:
		l := make([]any, len(t))
		for i, e := range t {
			l[i] = clone(e)
		}
		return l
	default:
		return v
	}
}
