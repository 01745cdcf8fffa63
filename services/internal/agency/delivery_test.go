package agency_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	ce "github.com/cloudevents/sdk-go/v2/event"
	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/refbus/refbus/pkg/bus"
	"github.com/refbus/refbus/pkg/event"
	"github.com/refbus/refbus/pkg/inbox"
	"github.com/refbus/refbus/pkg/outbox"
	"github.com/refbus/refbus/pkg/poll"
	"github.com/refbus/refbus/schemas"
	"github.com/refbus/refbus/services/internal/agency"
)

func mustUUID(t *testing.T, s string) uuid.UUID {
	t.Helper()
	id, err := uuid.Parse(s)
	if err != nil {
		t.Fatalf("not a uuid: %q", s)
	}
	return id
}

func decode[T any](t *testing.T, body string) T {
	t.Helper()
	var v T
	if err := json.Unmarshal([]byte(body), &v); err != nil {
		t.Fatalf("decode %q: %v", body, err)
	}
	return v
}

func counts(t *testing.T, n *network, a string) map[string]int64 {
	t.Helper()
	c, err := n.svc(a).svc.Counts(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return c
}

const (
	requested = "org.refbus.referral.requested.v1"
	receipt   = bus.ReceiptType
)

// A referral crosses from health to ngo over HTTP and the bus, and the
// receipt comes back.
func TestReferralCrossesAndReceiptReturns(t *testing.T) {
	t.Parallel()
	n := newNetwork(t, "health", "ngo")

	status, body, _ := n.do("health", "POST", "/api/v1/referrals", n.consented("health", `{"to_agency":"ngo","service":"legal_help","note":"mother and two children need a safe place"}`))
	if status != 201 {
		t.Fatalf("create: %d %s", status, body)
	}
	created := decode[agency.Referral](t, body)
	if created.Status != "requested" || created.CaseID == uuid.Nil || created.FromAgency != "health" {
		t.Fatalf("created: %+v", created)
	}

	eventually(t, 5*time.Second, func() error {
		_, body, _ := n.do("ngo", "GET", "/api/v1/inbox", "")
		in := decode[struct{ Referrals []agency.Referral }](t, body)
		if len(in.Referrals) != 1 {
			return fmt.Errorf("ngo inbox has %d referrals", len(in.Referrals))
		}
		got := in.Referrals[0]
		if got.ID != created.ID || got.CaseID != created.CaseID || got.Status != "received" || got.Note != created.Note || got.Service != "legal_help" {
			return fmt.Errorf("ngo inbox shows %+v", got)
		}
		return nil
	})
	eventually(t, 5*time.Second, func() error {
		_, body, _ := n.do("health", "GET", "/api/v1/referrals/"+created.ID.String(), "")
		if r := decode[agency.Referral](t, body); r.Status != "received" {
			return fmt.Errorf("health sees %q", r.Status)
		}
		return nil
	})
	if c := counts(t, n, "health"); c["receipted "+requested] != 1 || c["inbox "+receipt+" applied"] != 0 {
		t.Fatalf("health counts: %v", c)
	}
}

// The relay stops after the referral's commit and before (or after) its
// publish; after a restart the referral still arrives, once.
func TestRelayCrashLosesNothing(t *testing.T) {
	t.Parallel()
	for _, stage := range []string{"before_publish", "before_mark"} {
		t.Run(stage, func(t *testing.T) {
			t.Parallel()
			n := newNetwork(t, "ngo")
			n.urls["health"] = n.newDB()
			crashing := n.start("health", func(c *agency.Config) {
				c.Relay.Fault = func(s string) error {
					if s == stage {
						return errors.New("relay killed")
					}
					return nil
				}
			})
			r, err := crashing.svc.CreateReferral(context.Background(), agency.NewReferral{ToAgency: "ngo", ConsentID: n.consent("health", "ngo"), Service: "psychological_help", Note: "n"})
			if err != nil {
				t.Fatal(err)
			}
			select {
			case err := <-crashing.done:
				if !errors.Is(err, outbox.ErrFault) {
					t.Fatalf("relay stopped with %v, want the fault", err)
				}
				crashing.done <- err // let stop() see it
			case <-time.After(10 * time.Second):
				t.Fatal("relay did not crash")
			}
			_ = crashing.stop()

			n.start("health", nil)
			eventually(t, 10*time.Second, wantStatus(n, "health", r.ID.String(), "received"))
			eventually(t, 5*time.Second, wantStatus(n, "ngo", r.ID.String(), "received"))
			if c := counts(t, n, "ngo"); c["inbox "+requested+" applied"] != 1 {
				t.Fatalf("ngo counts: %v", c)
			}
			if c := counts(t, n, "health"); c["outbox "+requested] != 1 || c["receipted "+requested] != 1 {
				t.Fatalf("health counts: %v", c)
			}
		})
	}
}

// The relay follows commit order: a transaction that enqueued an event and
// is still open holds back the cursor, even when a later transaction
// enqueued after it and committed; once it commits, its event is published
// (found by the relay's short poll, not a wake-up), first, and arrives
// once.
func TestRelayCursorWaitsForOpenTransaction(t *testing.T) {
	t.Parallel()
	n := newNetwork(t, "ngo")
	ctx := context.Background()
	pool, err := pgxpool.New(ctx, n.newDB())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	reg, err := schemas.Registry()
	if err != nil {
		t.Fatal(err)
	}
	ob := outbox.New(pool, "health", reg, nil)
	t.Cleanup(ob.Close)
	// A long PollInterval and no NOTIFY: the relay finds rows only when
	// kicked, or by the short poll while rows wait for an open transaction.
	var logged syncBuffer
	relay := outbox.NewRelay(pool, n.jetstream(), outbox.RelayOptions{PollInterval: time.Minute, GateWarnAfter: 100 * time.Millisecond,
		Logger: slog.New(slog.NewTextHandler(&logged, nil))})
	rctx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- relay.Run(rctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Error(err)
		}
	})

	type row struct {
		id   string
		txid string
		seq  int64
	}
	enqueue := func(tx pgx.Tx) row {
		t.Helper()
		e := n.requestedEvent(t, "health", "ngo", map[string]any{"to_agency": "ngo", "service": "legal_help", "note": "n"})
		if err := ob.Enqueue(ctx, tx, outbox.Message{To: "ngo", Event: e}); err != nil {
			t.Fatal(err)
		}
		r := row{id: e.Subject()}
		if err := tx.QueryRow(ctx, "SELECT txid::text, seq FROM outbox WHERE event_id = $1", e.ID()).Scan(&r.txid, &r.seq); err != nil {
			t.Fatal(err)
		}
		return r
	}
	begin := func() pgx.Tx {
		t.Helper()
		tx, err := pool.Begin(ctx)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = tx.Rollback(ctx) })
		return tx
	}
	commit := func(tx pgx.Tx) {
		t.Helper()
		if err := tx.Commit(ctx); err != nil {
			t.Fatal(err)
		}
	}
	// passed holds once the relay's cursor is at or after r.
	passed := func(r row) (bool, error) {
		var ok bool
		err := pool.QueryRow(ctx, "SELECT (txid, seq) >= ($1::text::xid8, $2::bigint) FROM relay_cursor", r.txid, r.seq).Scan(&ok)
		return ok, err
	}
	published := func() (int, error) {
		var k int
		err := pool.QueryRow(ctx, "SELECT count(*) FROM outbox_published").Scan(&k)
		return k, err
	}

	// A first event shows the relay at work.
	tx := begin()
	first := enqueue(tx)
	commit(tx)
	relay.Kick()
	eventually(t, 10*time.Second, func() error {
		if ok, err := passed(first); err != nil || !ok {
			return fmt.Errorf("cursor not past the first event (%v)", err)
		}
		return nil
	})

	// Open enqueues first, so its row is first in seq and in txid; later
	// enqueues after it and commits.
	open := begin()
	early := enqueue(open)
	tx = begin()
	late := enqueue(tx)
	if late.seq <= early.seq {
		t.Fatalf("late row seq %d, early %d", late.seq, early.seq)
	}
	commit(tx)
	relay.Kick()
	poll.Always(t, 500*time.Millisecond, func() error {
		relay.Kick()
		if ok, err := passed(early); err != nil || ok {
			return fmt.Errorf("cursor passed the row of an open transaction (%v)", err)
		}
		if k, err := published(); err != nil || k != 1 {
			return fmt.Errorf("%d events published while the first in commit order is not committed (%v)", k, err)
		}
		return nil
	})

	// Held back that long, the relay says which transaction holds it.
	if !strings.Contains(logged.String(), "events wait behind an open transaction: commit or end it") {
		t.Fatalf("the relay did not say what holds it back; its log:\n%s", logged.String())
	}

	commit(open)
	eventually(t, 5*time.Second, func() error {
		if ok, err := passed(late); err != nil || !ok {
			return fmt.Errorf("cursor not past the late event (%v)", err)
		}
		return nil
	})
	var inOrder bool
	err = pool.QueryRow(ctx, `SELECT (SELECT stream_seq FROM outbox_published WHERE seq = $1) < (SELECT stream_seq FROM outbox_published WHERE seq = $2)`,
		early.seq, late.seq).Scan(&inOrder)
	if err != nil || !inOrder {
		t.Fatalf("early event not published before the late one: %v", err)
	}
	for _, r := range []row{first, early, late} {
		eventually(t, 10*time.Second, wantStatus(n, "ngo", r.id, "received"))
	}
	eventually(t, 5*time.Second, n.consumerIdle("ngo"))
	if c := counts(t, n, "ngo"); c["inbox "+requested+" applied"] != 3 {
		t.Fatalf("ngo counts: %v", c)
	}
}

// The same event published twice, with the same message id and with a new
// one past JetStream's dedupe, is applied once.
func TestDuplicateEventAppliedOnce(t *testing.T) {
	t.Parallel()
	n := newNetwork(t, "ngo")
	js := n.jetstream()
	ev := n.requestedEvent(t, "health", "ngo", map[string]any{"to_agency": "ngo", "service": "legal_help", "note": "twice"})

	msg, err := event.NewMsg(bus.Subject("health", "ngo", requested), ev)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if _, err := js.PublishMsg(ctx, msg); err != nil {
		t.Fatal(err)
	}
	ack, err := js.PublishMsg(ctx, msg)
	if err != nil {
		t.Fatal(err)
	}
	if !ack.Duplicate {
		t.Fatal("JetStream did not flag the second publish as a duplicate")
	}
	msg.Header.Set(nats.MsgIdHdr, "past-the-window")
	if _, err := js.PublishMsg(ctx, msg); err != nil {
		t.Fatal(err)
	}
	eventually(t, 5*time.Second, wantStatus(n, "ngo", ev.Subject(), "received"))
	// Wait until ngo has acknowledged both copies before counting.
	eventually(t, 5*time.Second, n.consumerIdle("ngo"))
	if c := counts(t, n, "ngo"); c["inbox "+requested+" applied"] != 1 || len(c) != 1 {
		t.Fatalf("ngo counts: %v", c)
	}
}

// The consumer dies after its commit and before its ack; the redelivered
// event is applied once.
func TestConsumerCrashAfterCommitAppliesOnce(t *testing.T) {
	t.Parallel()
	n := newNetwork(t, "health")
	n.urls["ngo"] = n.newDB()
	var crashed atomic.Bool
	crashing := n.start("ngo", func(c *agency.Config) {
		c.Inbox.Fault = func(stage string) error {
			if stage == "after_commit" && crashed.CompareAndSwap(false, true) {
				return errors.New("consumer killed")
			}
			return nil
		}
	})
	r, err := n.svc("health").svc.CreateReferral(context.Background(), agency.NewReferral{ToAgency: "ngo", ConsentID: n.consent("health", "ngo"), Service: "legal_help", Note: "n"})
	if err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-crashing.done:
		if !errors.Is(err, inbox.ErrFault) {
			t.Fatalf("consumer stopped with %v, want the fault", err)
		}
		crashing.done <- err
	case <-time.After(10 * time.Second):
		t.Fatal("consumer did not crash")
	}
	// The effect committed before the crash: the referral is there, unacked.
	if _, err := n.referralStatusDirect(t, "ngo", r.ID); err != nil {
		t.Fatalf("committed referral missing after crash: %v", err)
	}
	_ = crashing.stop()

	n.start("ngo", nil)
	eventually(t, 10*time.Second, wantStatus(n, "health", r.ID.String(), "received"))
	eventually(t, 10*time.Second, n.consumerIdle("ngo"))
	if c := counts(t, n, "ngo"); c["inbox "+requested+" applied"] != 1 {
		t.Fatalf("ngo counts: %v", c)
	}
	if c := counts(t, n, "health"); c["receipted "+requested] != 1 {
		t.Fatalf("health counts: %v", c)
	}
	if info := n.consumerInfo("ngo"); info.Delivered.Consumer < 2 {
		t.Fatalf("the event was delivered %d times; the test did not exercise a redelivery", info.Delivered.Consumer)
	}
}

// An event whose data breaks its schema, and a message that is not an event
// at all, are stored as rejected with the reason; the next good event flows.
func TestPoisonEventsRejectedAndFlowContinues(t *testing.T) {
	t.Parallel()
	n := newNetwork(t, "ngo", "health")
	js := n.jetstream()
	ctx := context.Background()

	bad := n.requestedEvent(t, "health", "ngo", map[string]any{"to_agency": "ngo", "service": "shelter", "note": "ok"})
	// Break the data after it was built, as a buggy sender would.
	if err := bad.SetData("application/json", map[string]any{"to_agency": "ngo", "note": 42}); err != nil {
		t.Fatal(err)
	}
	msg, err := event.NewMsg(bus.Subject("health", "ngo", requested), bad)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := js.PublishMsg(ctx, msg); err != nil {
		t.Fatal(err)
	}
	if _, err := js.Publish(ctx, bus.Subject("health", "ngo", requested), []byte("not json at all")); err != nil {
		t.Fatal(err)
	}
	good, err := n.svc("health").svc.CreateReferral(ctx, agency.NewReferral{ToAgency: "ngo", ConsentID: n.consent("health", "ngo"), Service: "legal_help", Note: "good"})
	if err != nil {
		t.Fatal(err)
	}
	eventually(t, 5*time.Second, wantStatus(n, "health", good.ID.String(), "received"))

	var rej []agency.Rejection
	eventually(t, 5*time.Second, func() error {
		rej, err = n.svc("ngo").svc.Rejections(ctx, 10)
		if err != nil {
			return err
		}
		if len(rej) != 2 {
			return fmt.Errorf("%d rejections", len(rej))
		}
		return nil
	})
	reasons := rej[0].Reason + " | " + rej[1].Reason
	for _, want := range []string{"service", "note", "not JSON"} {
		if !strings.Contains(reasons, want) {
			t.Errorf("rejection reasons %q do not mention %q", reasons, want)
		}
	}
	// The sender learns why its event was refused.
	eventually(t, 5*time.Second, func() error {
		r, err := n.referralStatusDirect(t, "ngo", mustUUID(t, bad.Subject()))
		if err == nil {
			return fmt.Errorf("the rejected referral was applied: %+v", r)
		}
		return nil
	})
	// The two receipts on the bus: the good referral's and the rejection
	// of the broken one (the unreadable message has no sender to answer).
	cons, err := js.OrderedConsumer(ctx, bus.Stream, jetstream.OrderedConsumerConfig{FilterSubjects: []string{bus.Subject("ngo", "health", receipt)}})
	if err != nil {
		t.Fatal(err)
	}
	outcomes := map[string]string{}
	for len(outcomes) < 2 {
		m, err := cons.Next(jetstream.FetchMaxWait(5 * time.Second))
		if err != nil {
			t.Fatalf("receipts on the bus: %v (have %v)", err, outcomes)
		}
		// Receipts may share a message (a batch).
		parts := [][]byte{m.Data()}
		if event.IsBatch(m.Headers()) {
			if parts, err = event.SplitBatch(m.Data()); err != nil {
				t.Fatal(err)
			}
		}
		for _, p := range parts {
			e, err := event.Decode(nil, p)
			if err != nil {
				t.Fatal(err)
			}
			var d inbox.ReceiptData
			if err := event.Data(e, &d); err != nil {
				t.Fatal(err)
			}
			outcomes[d.EventID] = d.Outcome + ": " + d.Reason
		}
	}
	if got := outcomes[bad.ID()]; !strings.HasPrefix(got, "rejected: ") || !strings.Contains(got, "note") {
		t.Errorf("receipt of the broken referral: %q", got)
	}
	// The rejected messages were terminated, not left to redeliver: once
	// the consumer is idle, nothing more is delivered for several ack waits
	// (a slow machine may redeliver before that; that is allowed).
	eventually(t, 5*time.Second, n.consumerIdle("ngo"))
	delivered := n.consumerInfo("ngo").Delivered.Consumer
	consistently(t, 2*time.Second, func() error {
		if now := n.consumerInfo("ngo").Delivered.Consumer; now != delivered {
			return fmt.Errorf("ngo's consumer went on delivering: %d, then %d", delivered, now)
		}
		return nil
	})
}

// 1,000 referrals sent at once from three agencies all arrive exactly once.
func TestThousandReferralsFromThreeAgencies(t *testing.T) {
	t.Parallel()
	n := newNetwork(t, "health", "education", "social", "ngo")
	senders := []string{"health", "education", "social"}
	const total = 1000
	consents := map[[2]string]uuid.UUID{}
	for _, from := range senders {
		for _, to := range bus.Agencies {
			if to != from {
				consents[[2]string{from, to}] = n.consent(from, to)
			}
		}
	}
	ids := make([]uuid.UUID, total)
	var wg sync.WaitGroup
	errs := make(chan error, total)
	sem := make(chan struct{}, 32)
	for i := range total {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			from := senders[i%3]
			to := bus.Agencies[(i/3)%4]
			if to == from {
				to = "ngo"
			}
			r, err := n.svc(from).svc.CreateReferral(context.Background(), agency.NewReferral{ToAgency: to, ConsentID: consents[[2]string{from, to}], Service: offered[to], Note: fmt.Sprint(i)})
			if err != nil {
				errs <- err
				return
			}
			ids[i] = r.ID
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	eventually(t, 60*time.Second, func() error {
		for i, id := range ids {
			if err := wantStatus(n, senders[i%3], id.String(), "received")(); err != nil {
				return err
			}
		}
		return nil
	})
	var applied, receipts, sent int64
	for _, a := range bus.Agencies {
		eventually(t, 10*time.Second, n.consumerIdle(a))
		c := counts(t, n, a)
		applied += c["inbox "+requested+" applied"]
		receipts += c["receipted "+requested]
		sent += c["outbox "+requested]
		if c["inbox "+requested+" rejected"] != 0 || c["inbox "+receipt+" rejected"] != 0 {
			t.Fatalf("%s rejected events: %v", a, c)
		}
	}
	if applied != total || receipts != total || sent != total {
		t.Fatalf("sent %d, applied %d, receipted %d; want %d each", sent, applied, receipts, total)
	}
}

// Helpers that reach past the services, as an outside agency system would.

func (n *network) newDB() string { return newDB(n.t) }

func (n *network) jetstream() jetstream.JetStream {
	n.t.Helper()
	js, err := jetstream.New(n.nats.Connect())
	if err != nil {
		n.t.Fatal(err)
	}
	return js
}

func (n *network) requestedEvent(t *testing.T, from, to string, data map[string]any) *ce.Event {
	t.Helper()
	reg, err := schemas.Registry()
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := data["consent"]; !ok {
		data["consent"] = map[string]any{"id": uuid.NewString(), "purpose": "help", "data_categories": []string{"summary"},
			"expires_at": time.Now().Add(time.Hour).UTC().Format(time.RFC3339)}
	}
	ev, err := reg.New(bus.Source(from), requested, uuid.Must(uuid.NewV7()).String(), data)
	if err != nil {
		t.Fatal(err)
	}
	ev.SetExtension(event.ExtCaseID, uuid.Must(uuid.NewV7()).String())
	event.SetSequence(ev, 1)
	return ev
}

func (n *network) consumerInfo(a string) *jetstream.ConsumerInfo {
	n.t.Helper()
	c, err := n.jetstream().Consumer(context.Background(), bus.Stream, a)
	if err != nil {
		n.t.Fatal(err)
	}
	info, err := c.Info(context.Background())
	if err != nil {
		n.t.Fatal(err)
	}
	return info
}

// consumerIdle holds once agency a's consumer has nothing pending or
// unacknowledged.
func (n *network) consumerIdle(a string) func() error {
	return func() error {
		info := n.consumerInfo(a)
		if info.NumPending != 0 || info.NumAckPending != 0 {
			return fmt.Errorf("%s consumer: %d pending, %d unacknowledged", a, info.NumPending, info.NumAckPending)
		}
		return nil
	}
}

func (n *network) referralStatusDirect(t *testing.T, a string, id uuid.UUID) (agency.Referral, error) {
	return n.svc(a).svc.Referral(context.Background(), id)
}

// syncBuffer is a bytes.Buffer safe for a logger and a test to share.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}
