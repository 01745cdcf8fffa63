package identity

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/refbus/refbus/pkg/bus"
	"github.com/refbus/refbus/pkg/poll"
	"github.com/refbus/refbus/services/internal/network"
)

// startServer starts an embedded server in operator mode trusting op,
// with accounts preloaded, shut down in t.Cleanup.
func startServer(t testing.TB, op *Operator, accounts ...*Account) *server.Server {
	t.Helper()
	o := &server.Options{
		ServerName: "refbus-identity-test",
		Host:       "127.0.0.1",
		Port:       -1,
		JetStream:  true,
		StoreDir:   t.TempDir(),
		NoSigs:     true,
	}
	if err := ConfigureServer(o, op, t.TempDir(), accounts...); err != nil {
		t.Fatal(err)
	}
	srv, err := server.NewServer(o)
	if err != nil {
		t.Fatal(err)
	}
	srv.Start()
	t.Cleanup(srv.Shutdown)
	if !srv.ReadyForConnections(10 * time.Second) {
		t.Fatal("server not ready")
	}
	return srv
}

// conn is a client connection that records what the server refused it.
type conn struct {
	*nats.Conn
	mu      sync.Mutex
	refused []string
}

// connect connects as u, closed in t.Cleanup; the server's asynchronous
// errors (permissions violations) are recorded.
func connect(t testing.TB, url string, u *User, opts ...nats.Option) *conn {
	t.Helper()
	c := &conn{}
	opts = append(u.Options(), opts...)
	opts = append(opts, nats.ErrorHandler(func(_ *nats.Conn, _ *nats.Subscription, err error) {
		c.mu.Lock()
		c.refused = append(c.refused, err.Error())
		c.mu.Unlock()
	}))
	nc, err := nats.Connect(url, opts...)
	if err != nil {
		t.Fatalf("connect as %s: %v", u.Name, err)
	}
	t.Cleanup(nc.Close)
	c.Conn = nc
	return c
}

// violations are the permissions violations the server reported so far.
func (c *conn) violations() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []string
	for _, e := range c.refused {
		if strings.Contains(strings.ToLower(e), "permissions violation") {
			out = append(out, e)
		}
	}
	return out
}

// refusedSince waits until the server reported a permissions violation
// naming subject, after the first n violations.
func (c *conn) refusedSince(n int, subject string) error {
	v := c.violations()
	for _, e := range v[min(n, len(v)):] {
		if strings.Contains(e, `"`+subject) {
			return nil
		}
	}
	return fmt.Errorf("no permissions violation for %s; violations: %q", subject, v)
}

func js(t testing.TB, nc *nats.Conn) jetstream.JetStream {
	t.Helper()
	j, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	return j
}

// provision makes a network's stream, audit mirror, the durables of nodes
// and the buckets, as the network's admin.
// provision makes the network's stream, mirror and buckets as the admin
// does (network.Provision: the matrix holds the real provisioning to its
// promises, such as no roll-ups on the buckets), and the nodes' consumers.
func provision(t testing.TB, ctx context.Context, j jetstream.JetStream, nodes ...string) {
	t.Helper()
	if err := network.Provision(ctx, j, bus.StreamConfig{}); err != nil {
		t.Fatal(err)
	}
	for _, n := range nodes {
		if err := network.AddConsumer(ctx, j, n, bus.ConsumerConfig{AckWait: time.Second, MaxDeliver: 2}); err != nil {
			t.Fatal(err)
		}
	}
}

var errNotYet = errors.New("not yet")

// waitMsg waits for a message on ch.
func waitMsg(t testing.TB, ch <-chan *nats.Msg, d time.Duration) *nats.Msg {
	t.Helper()
	var got *nats.Msg
	poll.Until(t, d, func() error {
		select {
		case got = <-ch:
			return nil
		default:
			return errNotYet
		}
	})
	return got
}
