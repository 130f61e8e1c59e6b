package cli

import (
	"fmt"
	"runtime/debug"
	"strconv"
)

// memoryLimit sets the Go runtime's soft memory limit from
// REEL_MEMORY_LIMIT (bytes: the container's memory limit, which the Helm
// chart passes with a resourceFieldRef), unless GOMEMLIMIT is set: 64 MiB
// below it, but at most 90 % and at least half of it. The collector then
// works harder as the heap nears the limit instead of the pod being
// OOM-killed. The rest is for what the runtime's limit does not count,
// the binary's mapped pages above all, which do not grow with the pod:
// at 90 % of a 256 MiB limit the load test's projector peaked at 259 MB
// RSS, at 80 % at 238 MB, and with 12 partitions a topic at 261 MB;
// 256 MiB gets 192 MiB. It returns the limit set (0: none).
// memoryHeadroom is what a container keeps beyond Go's soft limit.
const memoryHeadroom = 64 << 20

func memoryLimit(getenv func(string) string) (int64, error) {
	v := getenv("REEL_MEMORY_LIMIT")
	if v == "" || getenv("GOMEMLIMIT") != "" {
		return 0, nil
	}
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil || n <= 0 {
		return 0, fmt.Errorf("REEL_MEMORY_LIMIT=%q: want the container's memory limit in bytes", v)
	}
	limit := max(n/2, min(n/10*9, n-memoryHeadroom))
	debug.SetMemoryLimit(limit)
	return limit, nil
}
