package cli

import (
	"runtime/debug"
	"testing"
)

func TestMemoryLimit(t *testing.T) {
	defer debug.SetMemoryLimit(debug.SetMemoryLimit(-1))
	env := func(m map[string]string) func(string) string { return func(k string) string { return m[k] } }
	got, err := memoryLimit(env(map[string]string{"REEL_MEMORY_LIMIT": "1073741824"}))
	if err != nil || got != 858993456 || debug.SetMemoryLimit(-1) != got {
		t.Errorf("1 GiB container: limit %d (%v), runtime %d; want 80 %%", got, err, debug.SetMemoryLimit(-1))
	}
	if got, _ := memoryLimit(env(map[string]string{"REEL_MEMORY_LIMIT": "1073741824", "GOMEMLIMIT": "500MiB"})); got != 0 {
		t.Errorf("GOMEMLIMIT set: memoryLimit set %d, want it left alone", got)
	}
	if _, err := memoryLimit(env(map[string]string{"REEL_MEMORY_LIMIT": "1Gi"})); err == nil {
		t.Error("a limit that is not bytes was accepted")
	}
}
