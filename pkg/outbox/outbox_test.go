package outbox_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	ce "github.com/cloudevents/sdk-go/v2/event"
	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/refbus/refbus/pkg/bus"
	"github.com/refbus/refbus/pkg/bustest"
	"github.com/refbus/refbus/pkg/event"
	"github.com/refbus/refbus/pkg/internal/testapp"
	"github.com/refbus/refbus/pkg/outbox"
	"github.com/refbus/refbus/pkg/pgtest"
	"github.com/refbus/refbus/pkg/poll"
	"github.com/refbus/refbus/pkg/receipt"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

const self, peer = "alpha", "beta"

func work(t *testing.T) *ce.Event {
	t.Helper()
	e, err := testapp.Event(self, testapp.Work{Work: uuid.NewString()})
	if err != nil {
		t.Fatal(err)
	}
	return e
}

func counts(t *testing.T, db bustest.DB) bustest.Tally {
	t.Helper()
	c, err := bustest.Counts(context.Background(), db)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// runRelay runs a relay until stop is called or the test ends.
func runRelay(t *testing.T, pool *pgxpool.Pool, js jetstream.JetStream, o outbox.RelayOptions) (r *outbox.Relay, stop func()) {
	t.Helper()
	r = outbox.NewRelay(pool, js, o)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- r.Run(ctx) }()
	var once sync.Once
	stop = func() {
		once.Do(func() {
			cancel()
			if err := <-done; err != nil {
				t.Error(err)
			}
		})
	}
	t.Cleanup(stop)
	return r, stop
}

// passed waits until the relay's cursor is past the event id.
func passed(t *testing.T, pool *pgxpool.Pool, id string) {
	t.Helper()
	poll.Until(t, 10*time.Second, func() error {
		ok, err := bustest.CursorPassed(context.Background(), pool, uuid.MustParse(id))
		if err == nil && !ok {
			err = fmt.Errorf("the relay's cursor is not past event %s", id)
		}
		return err
	})
}

// An invalid event is the caller's bug: Enqueue says why and writes
// nothing, not even the valid events it came with.
func TestEnqueueValidatesAndWritesNothing(t *testing.T) {
	t.Parallel()
	_, pool := testapp.NewStore(t)
	ctx := context.Background()
	ob := outbox.New(pool, self, testapp.Registry(), nil)
	t.Cleanup(ob.Close)

	badData, err := testapp.Registry().Build(bus.Source(self), testapp.WorkType, "w", map[string]any{"work": ""})
	if err != nil {
		t.Fatal(err)
	}
	unknown := work(t)
	unknown.SetType("org.refbus.test.unknown.v1")
	badID := work(t)
	badID.SetID("not-a-uuid")
	for _, c := range []struct {
		name string
		ev   *ce.Event
		want func(error) bool
	}{
		{"bad data", badData, func(err error) bool { return errors.Is(err, event.ErrInvalid) }},
		{"unknown type", unknown, func(err error) bool { return errors.Is(err, event.ErrUnknownType) }},
		{"id not a UUID", badID, func(err error) bool { return err != nil && strings.Contains(err.Error(), "not a UUID") }},
	} {
		err := pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
			err := ob.Enqueue(ctx, tx, outbox.Message{To: peer, Event: work(t)}, outbox.Message{To: peer, Event: c.ev})
			if !c.want(err) {
				t.Errorf("%s: Enqueue returned %v", c.name, err)
			}
			return nil // commit whatever it wrote
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	if c := counts(t, pool); len(c.Outbox) != 0 || c.Awaiting != 0 || ob.Enqueued() != 0 {
		t.Fatalf("invalid events wrote %v (%d awaiting, %d enqueued)", c.Outbox, c.Awaiting, ob.Enqueued())
	}

	err = pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
		return ob.Enqueue(ctx, tx, outbox.Message{To: peer, Event: work(t)})
	})
	if err != nil {
		t.Fatal(err)
	}
	if c := counts(t, pool); c.Outbox[testapp.WorkType].Written != 1 || c.Awaiting != 1 || ob.Enqueued() != 1 {
		t.Fatalf("a valid event wrote %v (%d awaiting, %d enqueued)", c.Outbox, c.Awaiting, ob.Enqueued())
	}
	if seq, err := outbox.LastSeq(ctx, pool); err != nil || seq != 1 {
		t.Fatalf("LastSeq = %d, %v; want 1", seq, err)
	}
}

// syncBuffer is a bytes.Buffer a logger and a test can share.
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

// The relay follows commit order: a transaction that enqueued an event and
// is still open holds back the cursor, even when a later transaction
// enqueued after it and committed; the relay says which transaction holds
// it; once it commits, its event is published first, found by the relay's
// short poll and not a wake-up.
func TestRelayWaitsForOpenTransaction(t *testing.T) {
	t.Parallel()
	_, pool := testapp.NewStore(t)
	_, js := testapp.NewBroker(t)
	ctx := context.Background()
	ob := outbox.New(pool, self, testapp.Registry(), nil)
	t.Cleanup(ob.Close)
	// A long PollInterval and no NOTIFY: the relay finds rows only when
	// kicked, or by its short poll while rows wait for an open transaction.
	var logged syncBuffer
	relay, _ := runRelay(t, pool, js, outbox.RelayOptions{PollInterval: time.Minute, GateWarnAfter: 100 * time.Millisecond,
		Logger: slog.New(slog.NewTextHandler(&logged, nil))})

	begin := func() pgx.Tx {
		t.Helper()
		tx, err := pool.Begin(ctx)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = tx.Rollback(ctx) })
		return tx
	}
	// enqueue enqueues an event in tx and returns it and its outbox seq.
	enqueue := func(tx pgx.Tx) (*ce.Event, int64) {
		t.Helper()
		e := work(t)
		if err := ob.Enqueue(ctx, tx, outbox.Message{To: peer, Event: e}); err != nil {
			t.Fatal(err)
		}
		sent, err := outbox.ListSent(ctx, tx, testapp.WorkType, 0, 100)
		if err != nil {
			t.Fatal(err)
		}
		for _, s := range sent {
			if s.EventID.String() == e.ID() {
				return e, s.Seq
			}
		}
		t.Fatal("the enqueued event is not in the outbox")
		return nil, 0
	}
	commit := func(tx pgx.Tx) {
		t.Helper()
		if err := tx.Commit(ctx); err != nil {
			t.Fatal(err)
		}
	}

	tx := begin()
	first, _ := enqueue(tx)
	commit(tx)
	relay.Kick()
	passed(t, pool, first.ID())

	open := begin()
	early, earlySeq := enqueue(open)
	tx = begin()
	late, lateSeq := enqueue(tx)
	if lateSeq <= earlySeq {
		t.Fatalf("late row seq %d, early %d", lateSeq, earlySeq)
	}
	commit(tx)
	poll.Always(t, 500*time.Millisecond, func() error {
		relay.Kick()
		if ok, err := bustest.CursorPassed(ctx, pool, uuid.MustParse(late.ID())); err != nil || ok {
			return fmt.Errorf("the cursor passed the row of an open transaction (%v)", err)
		}
		if c := counts(t, pool); c.Outbox[testapp.WorkType].Published != 1 {
			return fmt.Errorf("%d events published while the first in commit order is not committed", c.Outbox[testapp.WorkType].Published)
		}
		return nil
	})
	if !strings.Contains(logged.String(), "events wait behind an open transaction: commit or end it") {
		t.Fatalf("the relay did not say what holds it back; its log:\n%s", logged.String())
	}

	commit(open)
	passed(t, pool, late.ID())
	sent, err := outbox.ListSent(ctx, pool, testapp.WorkType, 0, 100)
	if err != nil {
		t.Fatal(err)
	}
	order := map[string]int64{}
	for _, s := range sent {
		if s.StreamSeq == nil {
			t.Fatalf("event %s not published", s.EventID)
		}
		order[s.EventID.String()] = *s.StreamSeq
	}
	if !(order[first.ID()] < order[early.ID()] && order[early.ID()] < order[late.ID()]) {
		t.Fatalf("published out of commit order: %v", order)
	}
	if msgs := testapp.Messages(t, js, ""); len(msgs) != 3 {
		t.Fatalf("%d messages in the stream, want 3", len(msgs))
	}
}

// With a Signer the relay signs each event once, chained to the one before,
// stores the signed bytes before it publishes them, and the chain goes on
// across a restart of the relay with a fresh signer of the same key.
func TestRelaySignsAndChainsAcrossRestart(t *testing.T) {
	t.Parallel()
	_, pool := testapp.NewStore(t)
	_, js := testapp.NewBroker(t)
	ctx := context.Background()
	ob := outbox.New(pool, self, testapp.Registry(), nil)
	t.Cleanup(ob.Close)
	signer, seed := testapp.NewSigner(t)
	trust := event.Trust{self: signer.PublicKey()}

	send := func(r *outbox.Relay, k int) {
		t.Helper()
		var last *ce.Event
		for range k {
			last = work(t)
			err := pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
				return ob.Enqueue(ctx, tx, outbox.Message{To: peer, Event: last})
			})
			if err != nil {
				t.Fatal(err)
			}
			r.Kick()
		}
		passed(t, pool, last.ID())
	}
	r1, stop1 := runRelay(t, pool, js, outbox.RelayOptions{Signer: signer, PollInterval: 20 * time.Millisecond})
	send(r1, 3)
	stop1()
	again, err := event.NewSigner(seed)
	if err != nil {
		t.Fatal(err)
	}
	r2, _ := runRelay(t, pool, js, outbox.RelayOptions{Signer: again, PollInterval: 20 * time.Millisecond})
	send(r2, 2)

	msgs := testapp.Messages(t, js, "")
	sent, err := outbox.ListSent(ctx, pool, testapp.WorkType, 0, 100)
	if err != nil {
		t.Fatal(err)
	}
	if len(msgs) != 5 || len(sent) != 5 {
		t.Fatalf("%d messages, %d sent events; want 5", len(msgs), len(sent))
	}
	prev := event.GenesisHash
	for i, m := range msgs {
		e, err := event.Decode(m.Header, m.Data)
		if err != nil {
			t.Fatal(err)
		}
		if err := event.Verify(e, trust); err != nil {
			t.Fatalf("event %d: %v", i, err)
		}
		if got := event.PrevHash(e); got != prev {
			t.Fatalf("event %d chains to %.12s, want %.12s: the chain broke", i, got, prev)
		}
		if prev, err = event.ChainHash(e); err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(sent[i].Payload, m.Data) {
			t.Fatalf("event %d: the outbox holds other bytes than were published", i)
		}
	}
}

// An event whose receipt does not come back in time is published again
// with the same event, under a new Nats-Msg-Id past JetStream's dedupe, and
// no longer once its receipt is recorded.
func TestRelayResendsForWantOfReceipt(t *testing.T) {
	t.Parallel()
	_, pool := testapp.NewStore(t)
	_, js := testapp.NewBroker(t)
	ctx := context.Background()
	ob := outbox.New(pool, self, testapp.Registry(), nil)
	t.Cleanup(ob.Close)
	const timeout = 300 * time.Millisecond
	opts := outbox.RelayOptions{ReceiptTimeout: timeout, PollInterval: 20 * time.Millisecond}
	_, stop := runRelay(t, pool, js, opts)
	e := work(t)
	err := pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error { return ob.Enqueue(ctx, tx, outbox.Message{To: peer, Event: e}) })
	if err != nil {
		t.Fatal(err)
	}
	ob.Wake()

	// The re-send is published before the relay records it: wait for both.
	var msgs []*jetstream.RawStreamMsg
	var sent []outbox.Sent
	poll.Until(t, 10*time.Second, func() error {
		if msgs = testapp.Messages(t, js, ""); len(msgs) < 2 {
			return fmt.Errorf("%d publishes, want a re-send", len(msgs))
		}
		var err error
		if sent, err = outbox.ListSent(ctx, pool, testapp.WorkType, 0, 10); err == nil && (len(sent) != 1 || sent[0].Republished < 1) {
			err = fmt.Errorf("the outbox does not yet record the re-send: %+v", sent)
		}
		return err
	})
	if id := msgs[0].Header.Get(nats.MsgIdHdr); id != event.MsgID(e) {
		t.Fatalf("first publish has Nats-Msg-Id %q, want %q", id, event.MsgID(e))
	}
	if id := msgs[1].Header.Get(nats.MsgIdHdr); id != event.MsgID(e)+"#r1" {
		t.Fatalf("re-send has Nats-Msg-Id %q, want a new one", id)
	}
	if !bytes.Equal(msgs[0].Data, msgs[1].Data) {
		t.Fatal("the re-send carries other bytes than the first publish")
	}
	if sent[0].StreamSeq == nil || *sent[0].StreamSeq != int64(msgs[0].Sequence) {
		t.Fatalf("outbox records %+v", sent)
	}

	// The receipt comes while the relay is down, so that no re-send is
	// under way; the relay that starts after it sends nothing more.
	stop()
	if err := receipt.Record(ctx, pool, []receipt.Receipt{{EventID: uuid.MustParse(e.ID()), From: peer}}); err != nil {
		t.Fatal(err)
	}
	n := len(testapp.Messages(t, js, ""))
	runRelay(t, pool, js, opts)
	poll.Always(t, 4*timeout, func() error {
		if k := len(testapp.Messages(t, js, "")); k != n {
			return fmt.Errorf("the relay sent the event again after its receipt (%d publishes, then %d)", n, k)
		}
		return nil
	})
}
