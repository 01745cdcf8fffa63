package core

import (
	"os"
	"runtime/debug"
)

// TuneGC sets the garbage collector for a process that runs nodes, unless
// GOGC and GOMEMLIMIT say otherwise; call it first thing in main. Every event is decoded, validated and
// encoded: a lot of short-lived garbage over a small live heap. At GOGC
// 400 the heap grows to five times what is live, tens of megabytes, and
// the collector runs a quarter as often as at Go's default; the memory
// limit caps what that costs (docs/performance.md).
func TuneGC() {
	if os.Getenv("GOGC") == "" {
		debug.SetGCPercent(400)
	}
	if os.Getenv("GOMEMLIMIT") == "" {
		debug.SetMemoryLimit(1 << 30)
	}
}
