package core_test

import (
	"context"
	"testing"
	"time"

	"github.com/refbus/refbus/pkg/bus"
	"github.com/refbus/refbus/pkg/natstest"
	"github.com/refbus/refbus/schemas"
	"github.com/refbus/refbus/services/internal/core"
	"github.com/refbus/refbus/services/internal/core/nodetest"
)

// On a 3-node NATS cluster with 3 replicas, the server that leads the
// stream is lost while referrals flow; every referral arrives, once.
func TestClusterLosesStreamLeaderMidFlow(t *testing.T) {
	t.Parallel()
	cl := natstest.NewCluster(t, 3)
	n := nodetest.NewOn(t, cl.URLs())
	tune := func(c *core.Config) {
		c.Stream.Replicas = 3
		// A receipt published while the leader is lost can be lost with
		// it; the sender heals that by sending the event again (a repeat
		// is answered with a receipt again), here after 5s instead of 2
		// minutes.
		c.Relay.ReceiptTimeout = 5 * time.Second
	}
	n.Start("clinic", plain(healthCheck), tune)
	n.Start("legal_aid", ledgerKind(legalHelp), tune)
	before := sendMany(t, n, "clinic", "legal_aid", "legal_help", 50)

	s, err := n.JetStream().Stream(context.Background(), bus.Stream)
	if err != nil {
		t.Fatal(err)
	}
	leader := s.CachedInfo().Cluster.Leader
	lost := false
	for _, srv := range cl.Servers {
		if srv.Name() == leader {
			srv.Shutdown()
			lost = true
		}
	}
	if !lost {
		t.Fatalf("no server named %q leads the stream", leader)
	}

	after := sendMany(t, n, "clinic", "legal_aid", "legal_help", 50)
	ids := append(before, after...)
	receivedOnce(t, n, "clinic", "legal_aid", ids, "received")
	if c := n.Counts("clinic"); c.Outbox[schemas.TypeRequested].Receipted != 100 {
		t.Fatalf("clinic's outbox: %+v", c.Outbox)
	}
}
