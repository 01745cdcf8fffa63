package main

import (
	"bufio"
	"fmt"
	"os"

	"github.com/spf13/cobra"

	"github.com/refbus/refbus/pkg/event"
	"github.com/refbus/refbus/services/auditor/internal/progress"
	"github.com/refbus/refbus/services/auditor/internal/stream"
	"github.com/refbus/refbus/services/auditor/internal/verify"
)

const verifyLong = `Verify checks that the REFERRALS stream is whole, untouched and legal, over
the same range and filters as replay. For every message:

  - it decodes as a CloudEvent (structured or binary mode) and its data
    matches the JSON Schema of its type;
  - its source is the node its subject refbus.<from>.<to>.<event> names as
    the sender, and the subject matches its type;
  - no event (source and id) is stored twice, except as a republish: the same
    bytes on the same subject with the relay's Nats-Msg-Id (<source>#<id>,
    or <source>#<id>#r<n>); other bytes are "altered", the same bytes
    published otherwise "replayed";
  - the sequence extension of each referral, per sending node, starts at 1
    and goes up by one: a number skipped is a "sequence gap" (an event was
    removed), a number that comes late is "reordered";
  - each referral moves only as the referral state machine allows: a request
    opens it, its receiver's receipt (outcome applied) receives it, and every
    later move is made by the party allowed to make it, with its input;
  - with --trust, every event is signed by its sender's key and the
    signature matches it ("unsigned", "bad signature"), and goes between
    nodes that have trust anchors: they are the network; with or without,
    each sender's events form one hash chain (schemas/SIGNING.md): an event
    whose prevhash no event in the stream has is "chain broken" (the one
    before it was removed or altered), one that comes after its successor
    "chain reordered". Chains are checked only without filters.

When the range starts after the beginning of the stream, or --type hides
some events, the first event seen of a referral is taken as it comes.

Every problem is printed on its own line, "seq <n>: <kind>: <detail>", then a
summary. Exit status: 0 when no problem was found, 1 when one was, 2 on a
usage or connection error.`

const verifyExample = `  refbus-audit verify --trust .data/trust
  refbus-audit verify --agency ngo --since 2026-01-01T00:00:00Z`

func (a *app) verifyCommand() *cobra.Command {
	var sel selection
	var workers int
	var trustFile string
	cmd := &cobra.Command{
		Use:     "verify",
		Short:   "Check the stream for altered, missing, replayed, forged or illegal events",
		Long:    verifyLong,
		Example: verifyExample,
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			r, err := sel.resolve()
			if err != nil {
				return err
			}
			var trust event.Trust
			if trustFile != "" {
				b, err := os.ReadFile(trustFile)
				if err != nil {
					return usageError("--trust: %v", err)
				}
				if trust, err = event.ParseTrust(string(b)); err != nil {
					return usageError("--trust %s: %v", trustFile, err)
				}
			}
			return a.verify(cmd, r, sel.filter, workers, trust)
		},
	}
	sel.addFlags(cmd)
	cmd.Flags().StringVar(&trustFile, "trust", "", "file of trust anchors, one node=PUBLICKEY a line (make run writes .data/trust): the network's nodes; without it signatures are not checked, hash chains are")
	cmd.Flags().IntVar(&workers, "workers", 0, "goroutines decoding and validating (default: one per CPU)")
	_ = cmd.Flags().MarkHidden("workers")
	return cmd
}

func (a *app) verify(cmd *cobra.Command, r stream.Range, f stream.Filter, workers int, trust event.Trust) error {
	reg, err := a.registry()
	if err != nil {
		return fmt.Errorf("load schemas: %w", err)
	}
	nc, js, err := a.connect()
	if err != nil {
		return err
	}
	defer nc.Close()
	out := bufio.NewWriter(a.stdout)
	v := verify.New(reg, verify.Options{
		Complete: r.Open() && !f.Narrows(),
		Linked:   !f.Splits(),
		Report:   func(p verify.Problem) { fmt.Fprintln(out, p) },
		Trust:    trust,
		Chains:   f.None(),
	})
	meter := progress.Start(a.stderr, "verify")
	o := stream.Options{Range: r, Subjects: f.Subjects(), Stream: a.streamName()}
	if meter != nil {
		o.Progress = meter
	}
	ctx := cmd.Context()
	err = v.Run(ctx, func(fn func(*stream.Msg) error) error {
		return stream.Read(ctx, js, o, func(m *stream.Msg) error {
			if !f.Match(m) {
				return nil
			}
			return fn(m)
		})
	}, workers)
	meter.Stop()
	if err != nil {
		_ = out.Flush()
		return err
	}
	sum := v.Finish()
	if _, err := sum.WriteTo(out); err != nil {
		return err
	}
	if trust != nil {
		fmt.Fprintf(out, "  signatures: checked against %d trust anchors\n", len(trust))
	} else {
		fmt.Fprintln(out, "  signatures: not checked (no --trust)")
	}
	if err := out.Flush(); err != nil {
		return err
	}
	if sum.Total() > 0 {
		return errProblems
	}
	return nil
}
