package cli

import (
	"fmt"
	"runtime/debug"
	"strconv"
)

// memoryLimit sets the Go runtime's soft memory limit to 90 % of
// REEL_MEMORY_LIMIT (bytes: the container's memory limit, which the Helm
// chart passes with a resourceFieldRef), unless GOMEMLIMIT is set. The
// collector then works harder as the heap nears the limit instead of the
// pod being OOM-killed. It returns the limit set (0: none).
func memoryLimit(getenv func(string) string) (int64, error) {
	v := getenv("REEL_MEMORY_LIMIT")
	if v == "" || getenv("GOMEMLIMIT") != "" {
		return 0, nil
	}
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil || n <= 0 {
		return 0, fmt.Errorf("REEL_MEMORY_LIMIT=%q: want the container's memory limit in bytes", v)
	}
	limit := n / 10 * 9
	debug.SetMemoryLimit(limit)
	return limit, nil
}
