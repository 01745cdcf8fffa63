package core_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/refbus/refbus/pkg/bus"
	"github.com/refbus/refbus/pkg/inbox"
	"github.com/refbus/refbus/pkg/pgtest"
	"github.com/refbus/refbus/schemas"
	"github.com/refbus/refbus/services/internal/core"
	"github.com/refbus/refbus/services/internal/core/app"
	"github.com/refbus/refbus/services/internal/core/nodetest"
)

// hold is an inbox fault hook that holds the consumer after its first
// commit until released: the batch is applied and not acknowledged, and
// what comes after waits on the broker.
type hold struct {
	held, freed chan struct{}
	heldOnce    sync.Once
	freeOnce    sync.Once
}

func newHold() *hold { return &hold{held: make(chan struct{}), freed: make(chan struct{})} }

func (h *hold) hook(s inbox.Stage) error {
	if s != inbox.AfterCommit {
		return nil
	}
	first := false
	h.heldOnce.Do(func() { first = true; close(h.held) })
	if first {
		select {
		case <-h.freed:
		case <-time.After(2 * time.Minute):
		}
	}
	return nil
}

func (h *hold) release() { h.freeOnce.Do(func() { close(h.freed) }) }

// inFlight sends k referrals from node from to ledger node to while the
// receiver's consumer is held after its first commit (h), and returns
// once all of them are published and some are provably not yet applied:
// referrals that a broker or a store now killed could lose.
func inFlight(t *testing.T, n *nodetest.Network, h *hold, from, to, service string, k int) []uuid.UUID {
	t.Helper()
	ids := sendMany(t, n, from, to, service, 1)
	select {
	case <-h.held:
	case <-time.After(30 * time.Second):
		t.Fatal("the receiver's consumer committed nothing")
	}
	ids = append(ids, sendMany(t, n, from, to, service, k-1)...)
	nodetest.Eventually(t, 30*time.Second, func() error {
		if p := n.Counts(from).Outbox[schemas.TypeRequested].Published; p < int64(k) {
			return fmt.Errorf("%d of %d referrals published", p, k)
		}
		return nil
	})
	if h := heard(t, n, to); len(h) >= k {
		t.Fatalf("all %d referrals were applied already: nothing is in flight", k)
	}
	for _, id := range ids[1:] {
		if r, err := n.Referral(from, id); err != nil || r.Status != "requested" {
			t.Fatalf("referral %s is %q at its sender (%v): it is not in flight", id, r.Status, err)
		}
		if _, err := n.Referral(to, id); !errors.Is(err, app.ErrNotFound) {
			t.Fatalf("referral %s is at the receiver already (%v): it is not in flight", id, err)
		}
	}
	return ids
}

// The broker dies (SIGKILL) while referrals are in flight, and more are
// made while it is down; once it is back every one arrives, once.
func TestBrokerRestartLosesNothing(t *testing.T) {
	t.Parallel()
	n := nodetest.NewOnProcess(t)
	fast := func(c *core.Config) { c.Relay.ReceiptTimeout = 2 * time.Second }
	h := newHold()
	t.Cleanup(h.release)
	n.Start("legal_aid", ledgerKind(legalHelp), func(c *core.Config) { fast(c); c.Inbox.Fault = h.hook })
	n.Start("clinic", plain(healthCheck), fast)

	ids := inFlight(t, n, h, "clinic", "legal_aid", "legal_help", 20)
	n.Proc.Kill()
	h.release()
	ids = append(ids, sendMany(t, n, "clinic", "legal_aid", "legal_help", 10)...) // while the broker is down
	n.Proc.Start()
	receivedOnce(t, n, "clinic", "legal_aid", ids, "received")
}

// The receiver's Postgres dies (SIGKILL of the postmaster) while events
// arrive, and more arrive while it is down, some twice (the sender sends
// again what is not receipted in time): the consumer's failures are
// retried with back-off, and once it is back every referral is applied
// once.
func TestReceiverDatabaseRestartLosesNothing(t *testing.T) {
	t.Parallel()
	cluster := pgtest.NewCluster(t)
	ctx := context.Background()
	k := ledgerKind(legalHelp)
	if err := cluster.CreateDatabase(ctx, "legal_aid", ""); err != nil {
		t.Fatal(err)
	}
	if err := core.Migrate(ctx, cluster.URL("legal_aid"), k, nodetest.Logger(t)); err != nil {
		t.Fatal(err)
	}
	n := nodetest.New(t)
	n.SetDB("legal_aid", cluster.URL("legal_aid"))
	h := newHold()
	t.Cleanup(h.release)
	n.Start("legal_aid", k, func(c *core.Config) { c.Inbox.Fault = h.hook })
	n.Start("clinic", plain(healthCheck), func(c *core.Config) { c.Relay.ReceiptTimeout = 2 * time.Second })

	ids := inFlight(t, n, h, "clinic", "legal_aid", "legal_help", 20)
	if err := cluster.Kill(ctx); err != nil {
		t.Fatal(err)
	}
	h.release()
	during := sendMany(t, n, "clinic", "legal_aid", "legal_help", 10) // arriving while the store is down
	ids = append(ids, during...)
	// The store stays down until the sender, still without receipts, has
	// sent requests again: copies the receiver must apply once when it is
	// back. Meanwhile none of them can be received.
	js := n.JetStream()
	requests := bus.Subject("clinic", "legal_aid", schemas.TypeRequested)
	nodetest.Eventually(t, 30*time.Second, func() error {
		for _, id := range during {
			if r, err := n.Referral("clinic", id); err != nil || r.Status != "requested" {
				t.Fatalf("referral %s is %q at its sender (%v) while the receiver's store is down", id, r.Status, err)
			}
		}
		if k := streamCount(t, js, requests); k <= uint64(len(ids)) {
			return fmt.Errorf("%d requests on the stream for %d referrals: none sent again yet", k, len(ids))
		}
		return nil
	})
	if err := cluster.Restart(ctx); err != nil {
		t.Fatal(err)
	}
	receivedOnce(t, n, "clinic", "legal_aid", ids, "received")
}
