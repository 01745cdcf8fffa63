package testapp

import (
	"context"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/nats-io/nkeys"

	"github.com/refbus/refbus/pkg/bus"
	"github.com/refbus/refbus/pkg/event"
	"github.com/refbus/refbus/pkg/natstest"
	"github.com/refbus/refbus/pkg/pgtest"
)

// NewStore returns the URL of a fresh store of the test application and a
// pool on it, closed when the test ends.
func NewStore(t testing.TB) (string, *pgxpool.Pool) {
	t.Helper()
	url := pgtest.New(t, "testapp", Migrate)
	pool, err := pgxpool.New(context.Background(), url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	return url, pool
}

// NewBroker starts a broker for the test with the bus's stream, and
// returns its URL and a client.
func NewBroker(t testing.TB) (string, jetstream.JetStream) {
	t.Helper()
	srv := natstest.New(t)
	js, err := jetstream.New(srv.Connect())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := bus.EnsureStream(context.Background(), js, bus.StreamConfig{}); err != nil {
		t.Fatal(err)
	}
	return srv.ClientURL(), js
}

// Messages lists the messages in the bus's stream whose subject starts
// with prefix, in order.
func Messages(t testing.TB, js jetstream.JetStream, prefix string) []*jetstream.RawStreamMsg {
	t.Helper()
	ctx := context.Background()
	s, err := js.Stream(ctx, bus.Stream)
	if err != nil {
		t.Fatal(err)
	}
	info, err := s.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var out []*jetstream.RawStreamMsg
	for seq := info.State.FirstSeq; seq <= info.State.LastSeq && info.State.Msgs > 0; seq++ {
		m, err := s.GetMsg(ctx, seq)
		if err != nil {
			t.Fatal(err)
		}
		if strings.HasPrefix(m.Subject, prefix) {
			out = append(out, m)
		}
	}
	return out
}

// NewSigner returns a signer with a new key, and the key's seed.
func NewSigner(t testing.TB) (*event.Signer, []byte) {
	t.Helper()
	kp, err := nkeys.CreateAccount()
	if err != nil {
		t.Fatal(err)
	}
	seed, err := kp.Seed()
	if err != nil {
		t.Fatal(err)
	}
	s, err := event.NewSigner(seed)
	if err != nil {
		t.Fatal(err)
	}
	return s, seed
}
