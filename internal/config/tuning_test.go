package config_test

import (
	"errors"
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/reel-dev/reel/internal/config"
	"github.com/reel-dev/reel/projectors"
)

// programOpts are the runner options a config file does not set: the
// program decides them (role, wiring) or another section maps onto them.
var programOpts = map[string]string{
	"Brokers":             "kafka.brokers",
	"KafkaOpts":           "kafka.* (app.KafkaOpts)",
	"KafkaHooks":          "metrics wiring",
	"Logger":              "log.*",
	"WithMetrics":         "metrics wiring",
	"Generation":          "the generation registry",
	"Replay":              "a rebuild's role",
	"EffectsByGeneration": "the supervisor's role",
	"WithoutViews":        "a standby or rebuild's role",
	"StartOffsets":        "a rebuild's -from",
	"StartAt":             "a rebuild's -from",
	"WithTuning":          "the whole projector section",
	"RetryBackoff":        "projector.retryMin and projector.retryMax",
}

// settingKeys returns the YAML key of every field of projectors.Tuning.
func settingKeys(t *testing.T) map[string]reflect.StructField {
	keys := map[string]reflect.StructField{}
	st := reflect.TypeFor[projectors.Tuning]()
	for i := range st.NumField() {
		f := st.Field(i)
		key := f.Tag.Get("yaml")
		if key == "" || key == "-" {
			t.Errorf("projectors.Tuning.%s has no YAML key", f.Name)
		}
		keys[key] = f
	}
	return keys
}

// Every option of the runtime is a setting with a YAML key (projector.*)
// and an environment variable, or one the program sets (programOpts).
func TestEveryRunnerOptionHasAKey(t *testing.T) {
	keys := settingKeys(t)
	fields := map[string]bool{}
	for _, f := range keys {
		fields[f.Name] = true
	}
	// The options are the exported functions of package projectors that
	// return an Opt.
	fset := token.NewFileSet()
	files, err := filepath.Glob("../../projectors/*.go")
	if err != nil {
		t.Fatal(err)
	}
	var opts []string
	for _, name := range files {
		if strings.HasSuffix(name, "_test.go") {
			continue
		}
		f, err := parser.ParseFile(fset, name, nil, parser.SkipObjectResolution)
		if err != nil {
			t.Fatal(err)
		}
		for _, d := range f.Decls {
			fd, ok := d.(*ast.FuncDecl)
			if !ok || fd.Recv != nil || !fd.Name.IsExported() || fd.Type.Results == nil || len(fd.Type.Results.List) != 1 {
				continue
			}
			if id, ok := fd.Type.Results.List[0].Type.(*ast.Ident); ok && id.Name == "Opt" {
				opts = append(opts, fd.Name.Name)
			}
		}
	}
	if len(opts) < 10 {
		t.Fatalf("found only the options %v: is the runtime still in ../../projectors?", opts)
	}
	for _, o := range opts {
		if !fields[o] && programOpts[o] == "" {
			t.Errorf("runner option projectors.%s has no projector.* key: add a field to projectors.Tuning (or list it in programOpts with why not)", o)
		}
	}
	for f := range fields {
		if !slices.Contains(opts, f) && f != "RetryMin" && f != "RetryMax" {
			t.Errorf("setting %s has no option of its name for programs", f)
		}
	}

	// Each key and each variable reaches the runtime's value.
	def := projectors.DefaultTuning()
	for key, f := range keys {
		var yv, ev string
		var want any
		switch f.Type {
		case reflect.TypeFor[int]():
			n := reflect.ValueOf(def).FieldByIndex(f.Index).Int() + 7
			yv, ev, want = fmt.Sprint(n), fmt.Sprint(n), int(n)
		case reflect.TypeFor[int64]():
			n := reflect.ValueOf(def).FieldByIndex(f.Index).Int() + 4096
			yv, ev, want = fmt.Sprint(n), fmt.Sprint(n), n
		case reflect.TypeFor[time.Duration]():
			d := time.Duration(reflect.ValueOf(def).FieldByIndex(f.Index).Int()) + 3*time.Second
			yv, ev, want = d.String(), d.String(), d
		case reflect.TypeFor[bool]():
			b := !reflect.ValueOf(def).FieldByIndex(f.Index).Bool()
			yv, ev, want = fmt.Sprint(b), fmt.Sprint(b), b
		default:
			t.Fatalf("setting %s: type %s not covered by this test", key, f.Type)
		}
		c, err := parse([]byte("projector:\n  "+key+": "+yv+"\n"), nil)
		if err != nil {
			t.Fatalf("projector.%s: %v", key, err)
		}
		if got := reflect.ValueOf(c.Projector.Tuning).FieldByIndex(f.Index).Interface(); got != want {
			t.Errorf("projector.%s: %s gave %v", key, yv, got)
		}
		envName := config.TuningEnv(key)
		c, err = parse(nil, env(map[string]string{envName: ev}))
		if err != nil {
			t.Fatalf("%s: %v", envName, err)
		}
		if got := reflect.ValueOf(c.Projector.Tuning).FieldByIndex(f.Index).Interface(); got != want {
			t.Errorf("%s=%s gave %v", envName, ev, got)
		}
	}
	if got := config.TuningEnv("batchEvents"); got != "REEL_PROJECTOR_BATCH_EVENTS" {
		t.Errorf("TuningEnv(batchEvents) = %s", got)
	}
}

// A bad value of a setting is reported at its key, by the runtime's own
// check; a bad variable names itself and its key.
func TestBadSettingNamesItsKey(t *testing.T) {
	for key, f := range settingKeys(t) {
		if f.Type == reflect.TypeFor[bool]() {
			continue // every value is valid
		}
		bad := "-1"
		if f.Type == reflect.TypeFor[time.Duration]() {
			bad = "-1s"
		}
		c, err := parse([]byte("projector:\n  "+key+": "+bad+"\n"), nil)
		if err != nil {
			t.Fatal(err)
		}
		var es config.Errors
		if err := c.Validate(); !errors.As(err, &es) || !slices.ContainsFunc(es, func(e config.FieldError) bool { return e.Path == "projector."+key }) {
			t.Errorf("projector.%s: %s gave %v, want an error at projector.%s", key, bad, err, key)
		}
	}
	_, err := parse(nil, env(map[string]string{"REEL_PROJECTOR_FLUSH_INTERVAL": "soon"}))
	if err == nil || !strings.Contains(err.Error(), "REEL_PROJECTOR_FLUSH_INTERVAL (projector.flushInterval)") {
		t.Errorf("bad variable: %v", err)
	}
	// The runtime refuses the same values with the same keys.
	s := projectors.DefaultTuning()
	s.BatchEvents = 0
	if err := s.Validate(); err == nil || !strings.HasPrefix(err.Error(), "batchEvents: ") {
		t.Errorf("Tuning.Validate: %v", err)
	}
}

// The engine has no catalog of its own: a config that names none, in a
// program that passes none, is refused at catalog.dir.
func TestNoCatalog(t *testing.T) {
	c, err := config.Parse(nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Validate(); err == nil || !strings.Contains(err.Error(), "catalog.dir: no event catalog") {
		t.Fatalf("no catalog: %v", err)
	}
	if _, err := c.LoadCatalog(); !errors.Is(err, config.ErrNoCatalog) {
		t.Fatalf("LoadCatalog: %v", err)
	}
}
