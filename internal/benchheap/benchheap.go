// Package benchheap gives benchmarks the live heap of a real program.
//
// The garbage collector starts a cycle each time the heap grows by GOGC
// percent over the live heap, and never below 4 MiB. A benchmark binary has
// almost no live heap. So a benchmark allocating 1 KiB per operation runs a
// GC cycle every few thousand operations, and measures the collector's
// fixed cost more than the code.
//
// Real producers and consumers hold tens of MiB of buffers, clients and
// caches, which makes cycles far rarer. [Hold] keeps such a heap alive for
// the duration of a benchmark: 64 MiB by default.
//
// KSSE_BENCH_HEAP_MB sets the size in MiB. 0 disables it, to measure the
// tiny-heap case.
package benchheap

import (
	"os"
	"runtime"
	"strconv"
	"testing"
)

// DefaultMiB is the default size of the held heap.
const DefaultMiB = 64

var held [][]byte

// Hold keeps KSSE_BENCH_HEAP_MB (default 64) MiB of live heap until the end
// of b.
func Hold(b *testing.B) {
	mib := DefaultMiB
	if s := os.Getenv("KSSE_BENCH_HEAP_MB"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 0 {
			b.Fatalf("KSSE_BENCH_HEAP_MB=%q: want a size in MiB", s)
		}
		mib = n
	}
	if mib == 0 {
		return
	}
	h := make([]byte, mib<<20)
	for i := 0; i < len(h); i += 4096 {
		h[i] = 1 // touch every page, as a real heap would be
	}
	held = append(held, h)
	runtime.GC()
	b.Cleanup(func() {
		held = nil
		runtime.GC()
	})
}
