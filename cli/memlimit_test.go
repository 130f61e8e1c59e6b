package cli

import (
	"fmt"
	"runtime/debug"
	"testing"
)

func TestMemoryLimit(t *testing.T) {
	defer debug.SetMemoryLimit(debug.SetMemoryLimit(-1))
	env := func(m map[string]string) func(string) string { return func(k string) string { return m[k] } }
	for _, c := range []struct {
		container, want int64
		why             string
	}{
		{256 << 20, 192 << 20, "64 MiB below"},
		{1 << 30, 966367638, "90 %"},
		{100 << 20, 50 << 20, "half"},
	} {
		got, err := memoryLimit(env(map[string]string{"REEL_MEMORY_LIMIT": fmt.Sprint(c.container)}))
		if err != nil || got != c.want || debug.SetMemoryLimit(-1) != got {
			t.Errorf("%d-byte container: limit %d (%v), runtime %d; want %d (%s)", c.container, got, err, debug.SetMemoryLimit(-1), c.want, c.why)
		}
	}
	if got, _ := memoryLimit(env(map[string]string{"REEL_MEMORY_LIMIT": "1073741824", "GOMEMLIMIT": "500MiB"})); got != 0 {
		t.Errorf("GOMEMLIMIT set: memoryLimit set %d, want it left alone", got)
	}
	if _, err := memoryLimit(env(map[string]string{"REEL_MEMORY_LIMIT": "1Gi"})); err == nil {
		t.Error("a limit that is not bytes was accepted")
	}
}
