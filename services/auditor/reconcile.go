package main

import (
	"bufio"
	"fmt"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/refbus/refbus/pkg/bus"
	"github.com/refbus/refbus/schemas"
	"github.com/refbus/refbus/services/auditor/internal/progress"
	"github.com/refbus/refbus/services/auditor/internal/reconcile"
)

const reconcileLong = `Reconcile compares each node's store with the REFERRALS stream and with the
other stores. Every referral request (` + schemas.TypeRequested + `) must
be in its sender's outbox, published, in the stream at the sequence the
outbox recorded, in its receiver's inbox (applied or rejected), and receipted.

Give one --db per node whose store to read, as node=URL; a request whose
sender or receiver has no --db is checked on the sides that are given. The
stream is read first, up to where it ends then, and the stores after it in
read-only transactions, so events published meanwhile are not reported.

Printed, one per line: requests missing from the stream or from an inbox,
not in the sender's outbox, duplicated (more copies than the relay
republished, or two requests of one referral), stuck (no receipt within
--stuck-after of being written), not published within --stuck-after, or whose
stream sequence or receipt disagrees. Then a summary.

Exit status: 0 when nothing was found, 1 when something was, 2 on a usage or
connection error.`

const reconcileExample = `  refbus-audit reconcile --db health=postgres://auditor@db1/health --db ngo=postgres://auditor@db2/ngo
  refbus-audit reconcile --db social=$SOCIAL_DB --stuck-after 1h`

func (a *app) reconcileCommand() *cobra.Command {
	var dbs []string
	var stuck time.Duration
	cmd := &cobra.Command{
		Use:     "reconcile --db node=URL ...",
		Short:   "Compare the nodes' outboxes and inboxes with the stream and with each other",
		Long:    reconcileLong,
		Example: reconcileExample,
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			stores, err := parseStores(dbs)
			if err != nil {
				return err
			}
			if stuck <= 0 {
				return usageError("--stuck-after must be positive")
			}
			return a.reconcile(cmd, stores, stuck)
		},
	}
	cmd.Flags().StringArrayVar(&dbs, "db", nil, "a node's database, as node=URL (repeat for each node)")
	cmd.Flags().DurationVar(&stuck, "stuck-after", 10*time.Minute, "how long a request may wait for its receipt or its publication")
	return cmd
}

func parseStores(dbs []string) ([]reconcile.Store, error) {
	if len(dbs) == 0 {
		return nil, usageError("give at least one --db node=URL")
	}
	stores := make([]reconcile.Store, 0, len(dbs))
	seen := map[string]bool{}
	for _, d := range dbs {
		node, url, ok := strings.Cut(d, "=")
		switch {
		case !ok || node == "" || url == "":
			return nil, usageError("--db %q is not node=URL", d)
		case !bus.ValidNode(node):
			return nil, usageError("--db %s: %q is not a well-formed node name (lowercase letters, digits, _ and -, such as health or ngo_nur)", node, node)
		case seen[node]:
			return nil, usageError("--db %s is given twice", node)
		}
		seen[node] = true
		stores = append(stores, reconcile.Store{Node: node, URL: url})
	}
	return stores, nil
}

func (a *app) reconcile(cmd *cobra.Command, stores []reconcile.Store, stuck time.Duration) error {
	nc, js, err := a.connect()
	if err != nil {
		return err
	}
	defer nc.Close()
	out := bufio.NewWriter(a.stdout)
	o := reconcile.Options{
		Stores:     stores,
		StuckAfter: stuck,
		Report:     func(f reconcile.Finding) { fmt.Fprintln(out, f) },
	}
	meter := progress.Start(a.stderr, "reconcile")
	if meter != nil {
		o.Progress = meter
	}
	sum, err := reconcile.Run(cmd.Context(), js, o)
	meter.Stop()
	if err != nil {
		return err
	}
	if _, err := sum.WriteTo(out); err != nil {
		return err
	}
	if err := out.Flush(); err != nil {
		return err
	}
	if sum.Total() > 0 {
		return errProblems
	}
	return nil
}
