// Command refbus-audit lets an auditor answer from the REFERRALS stream
// alone whether every referral reached someone, whether anyone changed
// history, and who did what when. It only reads: through ordered consumers
// that never acknowledge on NATS, and in read-only transactions on the
// nodes' Postgres stores.
//
//	refbus-audit replay     the events of a range, as a table, JSON Lines or HTML
//	refbus-audit verify     check the stream is whole, untouched and legal
//	refbus-audit reconcile  compare the nodes' outboxes and inboxes with the stream
//
// Exit status: 0 when all is well, 1 when problems were found, 2 on a usage
// or connection error.
package main

import (
	"context"
	"io"
	"os"
	"os/signal"
	"runtime/debug"
	"syscall"

	"github.com/refbus/refbus/schemas"
)

// The exit statuses.
const (
	exitOK       = 0
	exitProblems = 1
	exitError    = 2
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

// run runs the command line args and returns the exit status.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	a := &app{stdout: stdout, stderr: stderr, registry: schemas.Registry, getenv: os.Getenv}
	return a.run(ctx, args)
}

// gcPercent is the garbage collector's target unless GOGC says otherwise.
// Decoding and validating every event allocates a lot of short-lived
// garbage while the live heap stays small (the batches in flight and a few
// dozen bytes per event and referral), so collecting four times less often
// costs little memory and makes verify about half again as fast.
const gcPercent = 400

// memoryLimit is the soft memory limit unless GOMEMLIMIT says otherwise:
// past it the collector runs more often instead of letting the heap grow
// to five times what is live, so the peak stays near it as long as what
// verify keeps (tens of bytes per event and referral) fits under it.
const memoryLimit = 256 << 20

func tuneGC(getenv func(string) string) {
	if getenv("GOGC") == "" {
		debug.SetGCPercent(gcPercent)
	}
	if getenv("GOMEMLIMIT") == "" {
		debug.SetMemoryLimit(memoryLimit)
	}
}
