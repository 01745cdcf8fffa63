package agency_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/refbus/refbus/pkg/pgtest"
	"github.com/refbus/refbus/services/internal/agency"
	"github.com/refbus/refbus/sql/agency/migrations"
)

// sendMany creates k referrals from one agency to another and returns their
// ids.
func sendMany(t *testing.T, n *network, from, to string, k int) []uuid.UUID {
	t.Helper()
	ids := make([]uuid.UUID, k)
	consent := n.consent(from, to)
	for i := range ids {
		r, err := n.svc(from).svc.CreateReferral(context.Background(), agency.NewReferral{ToAgency: to, ConsentID: consent, Service: offered[to], Note: fmt.Sprint(i)})
		if err != nil {
			t.Fatal(err)
		}
		ids[i] = r.ID
	}
	return ids
}

func allReceived(n *network, from string, ids []uuid.UUID) func() error {
	return func() error {
		for _, id := range ids {
			if err := wantStatus(n, from, id.String(), "received")(); err != nil {
				return err
			}
		}
		return nil
	}
}

// The broker restarts while referrals are in flight; every one arrives,
// once.
func TestBrokerRestartLosesNothing(t *testing.T) {
	t.Parallel()
	n := newNetwork(t, "health", "ngo")
	before := sendMany(t, n, "health", "ngo", 50)
	n.nats.Restart()
	after := sendMany(t, n, "health", "ngo", 50)

	eventually(t, 30*time.Second, allReceived(n, "health", append(before, after...)))
	eventually(t, 10*time.Second, n.consumerIdle("ngo"))
	if c := counts(t, n, "ngo"); c["inbox "+requested+" applied"] != 100 {
		t.Fatalf("ngo counts: %v", c)
	}
	if c := counts(t, n, "health"); c["receipted "+requested] != 100 {
		t.Fatalf("health counts: %v", c)
	}
}

// The receiver's Postgres restarts while events arrive: the consumer's
// failures are retried with back-off, and every referral is applied once.
func TestReceiverDatabaseRestartLosesNothing(t *testing.T) {
	t.Parallel()
	cluster := pgtest.NewCluster(t)
	ctx := context.Background()
	if err := cluster.CreateDatabase(ctx, "ngo", ""); err != nil {
		t.Fatal(err)
	}
	if err := migrations.Up(ctx, cluster.URL("ngo")); err != nil {
		t.Fatal(err)
	}
	n := newNetwork(t, "health")
	n.urls["ngo"] = cluster.URL("ngo")
	n.start("ngo", nil)

	first := sendMany(t, n, "health", "ngo", 20)
	eventually(t, 10*time.Second, allReceived(n, "health", first))
	if err := cluster.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	during := sendMany(t, n, "health", "ngo", 20)
	// With the receiver's store down, nothing can be received.
	if err := allReceived(n, "health", during)(); err == nil {
		t.Fatal("referrals were received while the receiver's database was down")
	}
	if err := cluster.Restart(ctx); err != nil {
		t.Fatal(err)
	}
	eventually(t, 60*time.Second, allReceived(n, "health", during))
	eventually(t, 10*time.Second, n.consumerIdle("ngo"))
	if c := counts(t, n, "ngo"); c["inbox "+requested+" applied"] != 40 {
		t.Fatalf("ngo counts: %v", c)
	}
	if c := counts(t, n, "health"); c["receipted "+requested] != 40 {
		t.Fatalf("health counts: %v", c)
	}
}
