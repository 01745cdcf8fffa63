package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"runtime/pprof"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/spf13/cobra"

	"github.com/refbus/refbus/pkg/bus"
	"github.com/refbus/refbus/pkg/event"
	refnet "github.com/refbus/refbus/services/internal/network"
)

// app is one run of the command: where it writes, and what it would
// otherwise take from the process, so that tests can run it in-process.
type app struct {
	stdout, stderr io.Writer
	registry       func() (*event.Registry, error)
	getenv         func(string) string

	natsURL string
	inbox   string
	creds   string
	// mirror reads the audit mirror instead of REFERRALS.
	mirror bool
	// stopProfile ends the CPU profile, if one was started.
	stopProfile func()
}

// streamName is the stream replay and verify read.
func (a *app) streamName() string {
	if a.mirror {
		return bus.AuditStream
	}
	return bus.Stream
}

// errProblems is returned by a command that found problems and reported
// them itself: the exit status is 1 and nothing more is printed.
var errProblems = errors.New("problems found")

// errUsage marks an error in the command line.
type errUsage struct{ err error }

func (e errUsage) Error() string { return e.err.Error() }
func (e errUsage) Unwrap() error { return e.err }

func usageError(format string, args ...any) error {
	return errUsage{fmt.Errorf(format, args...)}
}

func (a *app) run(ctx context.Context, args []string) int {
	tuneGC(a.getenv)
	root := a.rootCommand()
	root.SetArgs(args)
	root.SetOut(a.stdout)
	root.SetErr(a.stderr)
	err := root.ExecuteContext(ctx)
	if a.stopProfile != nil {
		a.stopProfile()
	}
	switch {
	case err == nil:
		return exitOK
	case errors.Is(err, errProblems):
		return exitProblems
	}
	fmt.Fprintf(a.stderr, "refbus-audit: %v\n", err)
	var u errUsage
	if errors.As(err, &u) || isFlagError(err) {
		fmt.Fprintln(a.stderr, "Run 'refbus-audit --help' for usage.")
	}
	return exitError
}

// isFlagError reports whether cobra failed on the command line itself.
func isFlagError(err error) bool {
	// cobra returns flag and argument errors unwrapped and untyped.
	for _, prefix := range []string{"unknown flag", "unknown shorthand", "flag needs", "invalid argument", "unknown command", "accepts ", "required flag"} {
		if len(err.Error()) >= len(prefix) && err.Error()[:len(prefix)] == prefix {
			return true
		}
	}
	return false
}

const rootLong = `refbus-audit answers from the REFERRALS stream alone whether every referral
reached someone, whether anyone changed history, and who did what when.

It only reads. On NATS it uses ordered consumers that never acknowledge and
never publishes; on Postgres (reconcile) it reads in read-only transactions.

Exit status:
  0  all is well
  1  problems were found (verify, reconcile) or events could not be shown (replay)
  2  usage error, or the stream or a database could not be reached

Environment:
  NATS_URL    default of --nats
  NATS_CREDS  default of --creds
  NATS_INBOX  default of --inbox`

func (a *app) rootCommand() *cobra.Command {
	root := &cobra.Command{
		Use:           "refbus-audit",
		Short:         "Replay, verify and reconcile the refbus referral stream",
		Long:          rootLong,
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.CompletionOptions.DisableDefaultCmd = true
	url := a.getenv("NATS_URL")
	if url == "" {
		url = "nats://127.0.0.1:4222"
	}
	root.PersistentFlags().StringVar(&a.natsURL, "nats", url, "NATS server URL (env NATS_URL)")
	root.PersistentFlags().StringVar(&a.creds, "creds", a.getenv("NATS_CREDS"), "NATS credentials file of a read-only auditor user (env NATS_CREDS)")
	root.PersistentFlags().StringVar(&a.inbox, "inbox", a.getenv("NATS_INBOX"), "the inbox prefix the auditor user receives on (refbus-admin auditor add prints it; env NATS_INBOX)")
	root.PersistentFlags().BoolVar(&a.mirror, "mirror", false, "replay and verify the audit mirror "+bus.AuditStream+" (no deletes, no purges, the whole retention) instead of "+bus.Stream)
	var cpuProfile string
	root.PersistentFlags().StringVar(&cpuProfile, "cpuprofile", "", "write a CPU profile to this file (for go tool pprof)")
	_ = root.PersistentFlags().MarkHidden("cpuprofile")
	root.PersistentPreRunE = func(*cobra.Command, []string) error {
		if cpuProfile == "" {
			return nil
		}
		f, err := os.Create(cpuProfile)
		if err != nil {
			return usageError("--cpuprofile: %v", err)
		}
		if err := pprof.StartCPUProfile(f); err != nil {
			_ = f.Close()
			return fmt.Errorf("cpu profile: %w", err)
		}
		a.stopProfile = func() { pprof.StopCPUProfile(); _ = f.Close() }
		return nil
	}
	root.SetFlagErrorFunc(func(_ *cobra.Command, err error) error { return errUsage{err} })
	root.AddCommand(a.replayCommand(), a.verifyCommand(), a.reconcileCommand())
	return root
}

// connect opens a connection to NATS for reading.
func (a *app) connect() (*nats.Conn, jetstream.JetStream, error) {
	opts := []nats.Option{nats.Name("refbus-audit")}
	if a.creds != "" {
		opts = append(opts, nats.UserCredentials(a.creds))
	}
	if a.inbox != "" {
		opts = append(opts, nats.CustomInboxPrefix(a.inbox))
	}
	nc, err := nats.Connect(a.natsURL, opts...)
	if err != nil {
		return nil, nil, fmt.Errorf("connect to NATS at %s: %w", refnet.HideCredentials(a.natsURL), err)
	}
	js, err := jetstream.New(nc)
	if err != nil {
		nc.Close()
		return nil, nil, fmt.Errorf("jetstream: %w", err)
	}
	return nc, js, nil
}
