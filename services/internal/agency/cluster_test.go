package agency_test

import (
	"context"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/refbus/refbus/pkg/bus"
	"github.com/refbus/refbus/pkg/natstest"
	"github.com/refbus/refbus/services/internal/agency"
)

// On a 3-node NATS cluster with 3 replicas, the node that leads the stream
// is lost while referrals flow; every referral arrives, once.
func TestClusterLosesStreamLeaderMidFlow(t *testing.T) {
	t.Parallel()
	cl := natstest.NewCluster(t, 3)
	n := &network{t: t, natsURL: cl.URLs(), urls: map[string]string{}, svcs: map[string]*running{}}
	for _, a := range []string{"health", "ngo"} {
		n.urls[a] = newDB(t)
		n.start(a, func(c *agency.Config) {
			c.Stream.Replicas = 3
			// A receipt published while the leader is lost can be lost
			// with it; the sender heals that by sending the event again
			// (a repeat is answered with a receipt again), here after 5s
			// instead of 2 minutes.
			c.Relay.ReceiptTimeout = 5 * time.Second
		})
	}
	before := sendMany(t, n, "health", "ngo", 50)

	nc, err := nats.Connect(cl.URLs())
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	s, err := js.Stream(context.Background(), bus.Stream)
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
		t.Fatalf("no node named %q leads the stream", leader)
	}

	after := sendMany(t, n, "health", "ngo", 50)
	eventually(t, 60*time.Second, allReceived(n, "health", append(before, after...)))
	if c := counts(t, n, "ngo"); c["inbox "+requested+" applied"] != 100 {
		t.Fatalf("ngo counts: %v", c)
	}
	if c := counts(t, n, "health"); c["receipted "+requested] != 100 {
		t.Fatalf("health counts: %v", c)
	}
}
