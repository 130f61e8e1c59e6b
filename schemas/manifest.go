package schemas

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"sort"
	"strings"

	"gopkg.in/yaml.v3"
)

// ManifestFile is the optional file at the root of a catalog directory
// that says what .avsc files cannot: topics, aggregate fields, levels,
// subject naming and mappings of foreign record names.
const ManifestFile = "catalog.yaml"

// SubjectStrategy is how registry subjects are named (Confluent's
// subject name strategies).
type SubjectStrategy string

const (
	// TopicRecordName: "<topic>-<full name>". The default: a topic carries
	// many event types, each with its own version history.
	TopicRecordName SubjectStrategy = "TopicRecordName"
	// RecordName: "<full name>", whatever the topic.
	RecordName SubjectStrategy = "RecordName"
	// TopicName: "<topic>-value". Only for topics that carry one type.
	TopicName SubjectStrategy = "TopicName"
)

// manifest is catalog.yaml as written. Keys are camelCase like reel.yaml.
type manifest struct {
	// Compatibility is the default level of every type (default
	// FULL_TRANSITIVE).
	Compatibility Compatibility `yaml:"compatibility"`
	// SubjectNameStrategy names registry subjects (default
	// TopicRecordName; types without a topic use RecordName).
	SubjectNameStrategy SubjectStrategy `yaml:"subjectNameStrategy"`
	// RegistryTypes: a writer schema found by registry ID whose record is
	// neither a catalog type nor mapped decodes generically under its own
	// name instead of being parked as unknown (default false).
	RegistryTypes bool `yaml:"registryTypes"`
	// Topics by name.
	Topics map[string]manifestTopic `yaml:"topics"`
	// Types by full name: per-type overrides.
	Types map[string]manifestType `yaml:"types"`
	// Mappings: foreign record name (or CloudEvents type) → catalog type.
	Mappings map[string]string `yaml:"mappings"`
}

type manifestTopic struct {
	// Types on the topic: full names, "<namespace>.*" or "*".
	Types []string `yaml:"types"`
	// AggregateField is the payload field holding the aggregate ID
	// (default: the record key alone).
	AggregateField string `yaml:"aggregateField"`
	// Plain: values are bare Avro binary of one type, with no framing.
	Plain *manifestPlain `yaml:"plain"`
}

type manifestPlain struct {
	Type    string `yaml:"type"`
	Version int    `yaml:"version"` // writer version; 0: the current one
}

type manifestType struct {
	Compatibility  Compatibility `yaml:"compatibility"`
	AggregateField string        `yaml:"aggregateField"`
}

// parseManifest reads catalog.yaml strictly: an unknown key is an error, so
// a typo does not silently fall back to a default.
func parseManifest(b []byte) (*manifest, error) {
	m := &manifest{}
	dec := yaml.NewDecoder(bytes.NewReader(b))
	dec.KnownFields(true)
	if err := dec.Decode(m); err != nil && !errors.Is(err, io.EOF) {
		return nil, fmt.Errorf("%s: %w", ManifestFile, err)
	}
	return m, nil
}

// apply attaches the manifest to the loaded types and reports every
// mistake at once, each with its key path.
func (m *manifest) apply(c *Catalog) error {
	var problems []string
	add := func(path, format string, args ...any) {
		problems = append(problems, path+": "+fmt.Sprintf(format, args...))
	}
	if m.Compatibility == "" {
		m.Compatibility = FullTransitive
	}
	if !m.Compatibility.valid() {
		add("compatibility", "%q is not a level (%s, %s)", m.Compatibility, FullTransitive, BackwardTransitive)
	}
	switch m.SubjectNameStrategy {
	case "":
		m.SubjectNameStrategy = TopicRecordName
	case TopicRecordName, RecordName, TopicName:
	default:
		add("subjectNameStrategy", "%q is not one of %s, %s, %s", m.SubjectNameStrategy, TopicRecordName, RecordName, TopicName)
	}
	c.strategy = m.SubjectNameStrategy
	c.registryTypes = m.RegistryTypes
	for _, name := range c.names {
		c.types[name].Compatibility = m.Compatibility
	}
	for _, name := range sortedKeys(m.Types) {
		mt := m.Types[name]
		t := c.types[name]
		if t == nil {
			add("types."+name, "no .avsc in the catalog defines a record of that name")
			continue
		}
		if mt.Compatibility != "" {
			if !mt.Compatibility.valid() {
				add("types."+name+".compatibility", "%q is not a level (%s, %s)", mt.Compatibility, FullTransitive, BackwardTransitive)
			} else {
				t.Compatibility = mt.Compatibility
			}
		}
		t.AggregateField = mt.AggregateField
	}
	for _, topic := range sortedKeys(m.Topics) {
		mt := m.Topics[topic]
		path := "topics." + topic
		spec := &Topic{Name: topic}
		if mt.Plain != nil {
			pt := c.types[mt.Plain.Type]
			switch {
			case pt == nil:
				add(path+".plain.type", "%q is not a type of the catalog", mt.Plain.Type)
			case mt.Plain.Version < 0 || mt.Plain.Version > len(pt.Versions):
				add(path+".plain.version", "%s has versions 1..%d", pt.Name, len(pt.Versions))
			default:
				v := mt.Plain.Version
				if v == 0 {
					v = len(pt.Versions)
				}
				spec.Plain = &pt.Versions[v-1]
			}
			if len(mt.Types) == 0 {
				mt.Types = []string{mt.Plain.Type}
			}
		}
		for i, pat := range mt.Types {
			matched := c.match(pat)
			if len(matched) == 0 {
				add(fmt.Sprintf("%s.types[%d]", path, i), "%q matches no type of the catalog", pat)
			}
			for _, name := range matched {
				t := c.types[name]
				if t.Topic != "" && t.Topic != topic {
					add(fmt.Sprintf("%s.types[%d]", path, i), "%s is already on topic %s; a type has one topic, so all events of an aggregate stay in order", name, t.Topic)
					continue
				}
				if t.Topic == "" {
					t.Topic = topic
					spec.Types = append(spec.Types, name)
				}
			}
		}
		if spec.Plain != nil && (len(spec.Types) != 1 || spec.Types[0] != spec.Plain.Type) {
			add(path+".types", "a plain topic carries exactly its plain type %s, found %v", spec.Plain.Type, spec.Types)
		}
		if m.SubjectNameStrategy == TopicName && len(spec.Types) > 1 {
			add(path, "subjectNameStrategy TopicName needs one type per topic, %s carries %d", topic, len(spec.Types))
		}
		spec.AggregateField = mt.AggregateField
		for _, name := range spec.Types {
			if t := c.types[name]; t.AggregateField == "" {
				t.AggregateField = mt.AggregateField
			}
		}
		c.topics[topic] = spec
	}
	for _, name := range c.names {
		t := c.types[name]
		if t.AggregateField == "" {
			continue
		}
		if err := checkAggregateField(t); err != nil {
			add("types."+name+".aggregateField", "%v", err)
		}
	}
	for _, foreign := range sortedKeys(m.Mappings) {
		target := m.Mappings[foreign]
		if c.types[target] == nil {
			add("mappings."+foreign, "maps to %q, which is not a type of the catalog", target)
			continue
		}
		if foreign == target {
			add("mappings."+foreign, "maps to itself")
			continue
		}
		c.mappings[foreign] = target
	}
	if len(problems) > 0 {
		return fmt.Errorf("%w:\n  %s", ErrCatalog, strings.Join(problems, "\n  "))
	}
	return nil
}

// match resolves a topic's type pattern: a full name, "<namespace>.*"
// (the types of exactly that namespace) or "*".
func (c *Catalog) match(pat string) []string {
	if pat == "*" {
		return append([]string(nil), c.names...)
	}
	if ns, ok := strings.CutSuffix(pat, ".*"); ok {
		var out []string
		for _, name := range c.names {
			if c.types[name].Namespace() == ns {
				out = append(out, name)
			}
		}
		return out
	}
	if c.types[pat] != nil {
		return []string{pat}
	}
	return nil
}

func (l Compatibility) valid() bool { return l == FullTransitive || l == BackwardTransitive }

func sortedKeys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}
