package main

import (
	"context"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	ce "github.com/cloudevents/sdk-go/v2/event"
	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/nats-io/nkeys"

	"github.com/refbus/refbus/pkg/bus"
	"github.com/refbus/refbus/pkg/busstore"
	"github.com/refbus/refbus/pkg/event"
	"github.com/refbus/refbus/pkg/natstest"
	"github.com/refbus/refbus/pkg/outbox"
	"github.com/refbus/refbus/pkg/pgmigrate"
	"github.com/refbus/refbus/pkg/pgtest"
	"github.com/refbus/refbus/schemas"
	"github.com/refbus/refbus/services/auditor/internal/stream"
	"github.com/refbus/refbus/services/internal/core"
	nodeapp "github.com/refbus/refbus/services/internal/core/app"
	"github.com/refbus/refbus/services/internal/core/nodetest"
	"github.com/refbus/refbus/services/ngo"
)

// testSeed makes a signing seed from a fixed byte, so that signatures in
// golden files stay put.
func testSeed(t testing.TB, b byte) []byte {
	t.Helper()
	raw := make([]byte, 32)
	for i := range raw {
		raw[i] = b
	}
	kp, err := nkeys.FromRawSeed(nkeys.PrefixByteAccount, raw)
	if err != nil {
		t.Fatal(err)
	}
	seed, err := kp.Seed()
	if err != nil {
		t.Fatal(err)
	}
	return seed
}

// testNodes are the nodes the tests' events go between; testKeys signs
// for them.
var testNodes = []string{"health", "education", "social", "ngo"}

// testKeys are a signing seed for each of testNodes and the trust anchors
// of all.
func testKeys(t testing.TB) (map[string][]byte, event.Trust) {
	t.Helper()
	seeds, trust := map[string][]byte{}, event.Trust{}
	for i, node := range testNodes {
		seeds[node] = testSeed(t, byte(i+1))
		s, err := event.NewSigner(seeds[node])
		if err != nil {
			t.Fatal(err)
		}
		trust[node] = s.PublicKey()
	}
	return seeds, trust
}

func writeTrust(t testing.TB, trust event.Trust) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "trust")
	if err := os.WriteFile(path, []byte(strings.ReplaceAll(trust.String(), ",", "\n")+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// A receiver with trust anchors refuses an event signed with a key that
// is not its sender's, and one not signed at all, and tells the sender why.
func TestInboxRejectsBadSignatures(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name   string
		health func(c *core.Config)
		want   string
	}{
		{"other key", func(c *core.Config) { c.SigningSeed = testSeed(t, 99) }, "bad signature: signer "},
		{"unsigned", func(c *core.Config) { c.SigningSeed = nil }, "event is not signed"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			n := newNetworkWith(t, func(node string, c *core.Config) {
				if node == "health" {
					tc.health(c)
					c.Trust = nil // so that it takes ngo's receipt
				}
			}, "health", "ngo")
			r, err := n.app("health").CreateReferral(context.Background(), nodeapp.NewReferral{ToOrg: "ngo", Service: "psychological_help", Note: "n", ConsentID: n.consent(t, "health", "ngo")})
			if err != nil {
				t.Fatal(err)
			}
			nodetest.Eventually(t, 10*time.Second, func() error {
				got, err := n.app("health").Referral(context.Background(), r.ID)
				if err != nil {
					return err
				}
				if !strings.Contains(got.DeliveryError, tc.want) {
					return errors.New("delivery error " + quote(got.DeliveryError) + ", want " + quote(tc.want))
				}
				return nil
			})
			rej, err := n.app("ngo").Rejections(context.Background(), 10)
			if err != nil {
				t.Fatal(err)
			}
			if len(rej) != 1 || !strings.Contains(rej[0].Reason, tc.want) {
				t.Fatalf("ngo's rejections: %+v", rej)
			}
			if _, err := n.app("ngo").Referral(context.Background(), r.ID); err == nil {
				t.Fatal("ngo applied the badly signed referral")
			}
		})
	}
}

func quote(s string) string { return `"` + s + `"` }

// The relay signs each event once: after a crash between publish and
// record it publishes the same bytes, the chain goes on from the last
// event it signed, and a re-send for want of a receipt is the same event.
func TestRelaySignsOnceAcrossCrashAndResend(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	pool, err := pgxpool.New(ctx, pgtest.New(t, "bus", func(ctx context.Context, url string) error {
		return pgmigrate.Up(ctx, url, busstore.Migrations)
	}))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	srv := natstest.New(t)
	js, err := jetstream.New(srv.Connect())
	if err != nil {
		t.Fatal(err)
	}
	str, err := bus.EnsureStream(ctx, js, bus.StreamConfig{})
	if err != nil {
		t.Fatal(err)
	}
	reg, err := schemas.Registry()
	if err != nil {
		t.Fatal(err)
	}
	ob := outbox.New(pool, "health", reg, nil)
	t.Cleanup(ob.Close)
	enqueue := func(k int) {
		t.Helper()
		tx, err := pool.Begin(ctx)
		if err != nil {
			t.Fatal(err)
		}
		defer func() { _ = tx.Rollback(ctx) }()
		for range k {
			e, err := reg.New(bus.Source("health"), schemas.TypeRequested, uuid.NewString(), schemas.Requested{ToAgency: "ngo", Service: "shelter", Note: "n"})
			if err != nil {
				t.Fatal(err)
			}
			e.SetExtension(event.ExtCaseID, uuid.NewString())
			event.SetSequence(e, 1)
			if err := ob.Enqueue(ctx, tx, outbox.Message{To: "ngo", Event: e}); err != nil {
				t.Fatal(err)
			}
		}
		if err := tx.Commit(ctx); err != nil {
			t.Fatal(err)
		}
	}
	seeds, trust := testKeys(t)
	signer := func() *event.Signer {
		s, err := event.NewSigner(seeds["health"])
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	msgs := func() uint64 {
		info, err := str.Info(ctx)
		if err != nil {
			t.Fatal(err)
		}
		return info.State.Msgs
	}

	enqueue(3)
	crashing := outbox.NewRelay(pool, js, outbox.RelayOptions{Signer: signer(), Fault: func(stage outbox.Stage) error {
		if stage == outbox.BeforeMark {
			return errors.New("relay killed")
		}
		return nil
	}})
	if err := crashing.Run(ctx); !errors.Is(err, outbox.ErrFault) {
		t.Fatalf("relay stopped with %v, want the fault", err)
	}
	if got := msgs(); got != 3 {
		t.Fatalf("stream holds %d messages after the crash, want 3", got)
	}

	enqueue(1)
	rctx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	relay := outbox.NewRelay(pool, js, outbox.RelayOptions{Signer: signer(), ReceiptTimeout: 400 * time.Millisecond, PollInterval: 50 * time.Millisecond})
	go func() { done <- relay.Run(rctx) }()
	// 4 events and a re-send of each: nobody receipts them.
	nodetest.Eventually(t, 15*time.Second, func() error {
		if got := msgs(); got < 8 {
			return errors.New("waiting for re-sends")
		}
		return nil
	})
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}

	first := map[string][]byte{} // event id -> bytes of its first copy
	var order []*ce.Event
	err = stream.Read(ctx, js, stream.Options{}, func(m *stream.Msg) error {
		e, err := event.Decode(m.Header, m.Data)
		if err != nil {
			return err
		}
		if err := event.Verify(e, trust); err != nil {
			t.Errorf("seq %d: %v", m.Seq, err)
		}
		if b, ok := first[e.ID()]; ok {
			if string(b) != string(m.Data) {
				t.Errorf("seq %d: re-sent event %s differs from its first copy", m.Seq, e.ID())
			}
			return nil
		}
		first[e.ID()] = m.Data
		order = append(order, e)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(order) != 4 {
		t.Fatalf("%d events in the stream, want 4", len(order))
	}
	prev := event.GenesisHash
	for i, e := range order {
		if got := event.PrevHash(e); got != prev {
			t.Fatalf("event %d: prevhash %s, want %s", i+1, got, prev)
		}
		if prev, err = event.ChainHash(e); err != nil {
			t.Fatal(err)
		}
	}
	code, out, errOut := runAudit(t, "--nats", srv.ClientURL(), "verify", "--trust", writeTrust(t, trust))
	if code != exitOK || !strings.Contains(out, "republished copies") {
		t.Fatalf("verify: exit %d\n%s%s", code, out, errOut)
	}
}

// A node reads its seed and the trust anchors from the environment, and
// refuses to start on anchors or a seed it cannot read.
func TestNodeSigningConfigFromEnv(t *testing.T) {
	seeds, trust := testKeys(t)
	t.Setenv("REFBUS_SIGNING_SEED", string(seeds["ngo"]))
	t.Setenv("REFBUS_TRUST", trust.String())
	c := core.ConfigFromEnv("ngo")
	s, err := event.NewSigner(c.SigningSeed)
	if err != nil || s.PublicKey() != trust["ngo"] {
		t.Fatalf("signing key %v, %v; want %s", s, err, trust["ngo"])
	}
	if c.Trust.String() != trust.String() {
		t.Fatalf("Trust = %v, want %v", c.Trust, trust)
	}
	log := slog.New(slog.DiscardHandler)
	t.Setenv("REFBUS_TRUST", "health=not-a-key")
	c = core.ConfigFromEnv("ngo")
	c.DatabaseURL = "postgres://127.0.0.1:1/none"
	if _, err := core.New(t.Context(), c, ngo.New(), log); err == nil || !strings.Contains(err.Error(), "REFBUS_TRUST") {
		t.Fatalf("New with bad anchors: %v", err)
	}
	t.Setenv("REFBUS_TRUST", "")
	t.Setenv("REFBUS_SIGNING_SEED", "SAnot-a-seed")
	c = core.ConfigFromEnv("ngo")
	c.DatabaseURL = "postgres://127.0.0.1:1/none"
	if _, err := core.New(t.Context(), c, ngo.New(), log); err == nil || !strings.Contains(err.Error(), "signing seed") {
		t.Fatalf("New with a bad seed: %v", err)
	}
}
