package inbox_test

import (
	"context"
	"fmt"
	"slices"
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
	"github.com/refbus/refbus/pkg/inbox"
	"github.com/refbus/refbus/pkg/internal/testapp"
	"github.com/refbus/refbus/pkg/outbox"
	"github.com/refbus/refbus/pkg/pgtest"
	"github.com/refbus/refbus/pkg/poll"
	"github.com/refbus/refbus/pkg/receipt"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

// consumerConfig redelivers fast, for tests.
var consumerConfig = bus.ConsumerConfig{AckWait: 2 * time.Second, BackOff: []time.Duration{50 * time.Millisecond}}

// startNode starts a node of the test application on a fresh store.
func startNode(t *testing.T, name, natsURL string, c testapp.Config) (*testapp.Node, *pgxpool.Pool) {
	t.Helper()
	url, pool := testapp.NewStore(t)
	c.Name, c.DatabaseURL, c.NATSURL = name, url, natsURL
	if c.Consumer.AckWait == 0 {
		c.Consumer = consumerConfig
	}
	n, err := testapp.Start(context.Background(), c)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := n.Stop(); err != nil {
			t.Error(err)
		}
	})
	return n, pool
}

func workEvent(t *testing.T, from string, d testapp.Work) *ce.Event {
	t.Helper()
	if d.Work == "" {
		d.Work = uuid.NewString()
	}
	e, err := testapp.Event(from, d)
	if err != nil {
		t.Fatal(err)
	}
	return e
}

// publish publishes e from one node to another, as a relay would, under
// msgID if not empty; it returns whether JetStream took it as a duplicate.
func publish(t *testing.T, js jetstream.JetStream, from, to string, e *ce.Event, msgID string) bool {
	t.Helper()
	m, err := event.NewMsg(bus.Subject(from, to, e.Type()), e)
	if err != nil {
		t.Fatal(err)
	}
	if msgID != "" {
		m.Header.Set(nats.MsgIdHdr, msgID)
	}
	ack, err := js.PublishMsg(context.Background(), m)
	if err != nil {
		t.Fatal(err)
	}
	return ack.Duplicate
}

func effects(t *testing.T, db bustest.DB) map[string]int {
	t.Helper()
	eff, err := testapp.Effects(context.Background(), db)
	if err != nil {
		t.Fatal(err)
	}
	return eff
}

func idle(t *testing.T, js jetstream.JetStream, node string) {
	t.Helper()
	poll.Until(t, 10*time.Second, func() error { return bustest.ConsumerIdle(context.Background(), js, node) })
}

func delivered(t *testing.T, js jetstream.JetStream, node string) uint64 {
	t.Helper()
	c, err := js.Consumer(context.Background(), bus.Stream, node)
	if err != nil {
		t.Fatal(err)
	}
	info, err := c.Info(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return info.Delivered.Consumer
}

// An event delivered twice, the second time past JetStream's dedupe (a new
// Nats-Msg-Id, as the relay's re-send uses), has its effect once: the
// effect is a counter with no unique key, so only the inbox's dedupe keeps
// it at one. Both copies are answered with a receipt.
func TestRepeatAppliesOnce(t *testing.T) {
	t.Parallel()
	natsURL, js := testapp.NewBroker(t)
	_, pool := startNode(t, "b", natsURL, testapp.Config{})
	e := workEvent(t, "a", testapp.Work{})
	if publish(t, js, "a", "b", e, "") {
		t.Fatal("the first publish was taken as a duplicate")
	}
	if !publish(t, js, "a", "b", e, "") {
		t.Fatal("JetStream did not drop a publish with the same Nats-Msg-Id")
	}
	// The re-send comes once the first copy is settled, as the relay's
	// does: it is then a repeat of an event in the inbox, not of one in
	// the same batch.
	idle(t, js, "b")
	if publish(t, js, "a", "b", e, event.MsgID(e)+"#r1") {
		t.Fatal("JetStream dropped a publish with a new Nats-Msg-Id")
	}
	poll.Until(t, 10*time.Second, func() error {
		if d := delivered(t, js, "b"); d < 2 {
			return fmt.Errorf("%d deliveries, want both copies", d)
		}
		return bustest.ConsumerIdle(context.Background(), js, "b")
	})
	if eff := effects(t, pool); eff[e.Subject()] != 1 || len(eff) != 1 {
		t.Fatalf("effects %v, want one for %s", eff, e.Subject())
	}
	c, err := bustest.Counts(context.Background(), pool)
	if err != nil {
		t.Fatal(err)
	}
	if c.Applied(testapp.WorkType) != 1 {
		t.Fatalf("inbox counts %v", c.Inbox)
	}
	poll.Until(t, 5*time.Second, func() error {
		if k := len(testapp.Messages(t, js, bus.Subject("b", "a", receipt.Type))); k != 2 {
			return fmt.Errorf("%d receipts sent back, want one per copy", k)
		}
		return nil
	})
}

// Copies of an event that arrive together, in one batch, have its effect
// once too.
func TestRepeatInOneBatchAppliesOnce(t *testing.T) {
	t.Parallel()
	natsURL, js := testapp.NewBroker(t)
	if _, err := bus.EnsureConsumer(context.Background(), js, "b", consumerConfig); err != nil {
		t.Fatal(err)
	}
	e := workEvent(t, "a", testapp.Work{})
	for i := range 3 {
		publish(t, js, "a", "b", e, fmt.Sprintf("%s#copy%d", event.MsgID(e), i))
	}
	_, pool := startNode(t, "b", natsURL, testapp.Config{}) // finds the copies waiting
	poll.Until(t, 10*time.Second, func() error {
		if d := delivered(t, js, "b"); d < 3 {
			return fmt.Errorf("%d of 3 copies delivered", d)
		}
		return bustest.ConsumerIdle(context.Background(), js, "b")
	})
	if eff := effects(t, pool); eff[e.Subject()] != 1 {
		t.Fatalf("effects %v, want one", eff)
	}
}

// Bad input is kept, not dropped: each of these is stored as rejected with
// a reason a person can read, and answered with a rejected receipt when it
// names a sender; good events keep flowing.
func TestRejectsWithReasons(t *testing.T) {
	t.Parallel()
	natsURL, js := testapp.NewBroker(t)
	_ = natsURL
	_, pool := testapp.NewStore(t)
	ctx := context.Background()
	signerA, _ := testapp.NewSigner(t)
	signerX, _ := testapp.NewSigner(t)
	forger, _ := testapp.NewSigner(t)
	trust := event.Trust{"a": signerA.PublicKey(), "x": signerX.PublicKey()}
	// A consumer that also reads what is addressed to c, as a misconfigured
	// one would: the inbox itself must refuse it.
	cons, err := js.CreateOrUpdateConsumer(ctx, bus.Stream, jetstream.ConsumerConfig{
		Durable: "b", FilterSubjects: []string{"refbus.*.b.>", "refbus.a.c.>"}, AckPolicy: jetstream.AckExplicitPolicy,
		AckWait: 2 * time.Second,
	})
	if err != nil {
		t.Fatal(err)
	}
	ob := outbox.New(pool, "b", testapp.Registry(), nil)
	t.Cleanup(ob.Close)
	c := inbox.NewConsumer("b", pool, cons, js, testapp.Registry(), ob, testapp.Handler{}, inbox.Options{Trust: trust, BackOff: consumerConfig.BackOff})
	run(t, c)

	signed := func(s *event.Signer, e *ce.Event) *ce.Event {
		t.Helper()
		if _, err := s.Sign(e); err != nil {
			t.Fatal(err)
		}
		return e
	}
	badData, err := testapp.Registry().Build(bus.Source("a"), testapp.WorkType, "w-bad-data", map[string]any{"work": 5})
	if err != nil {
		t.Fatal(err)
	}
	badReceipt, err := testapp.Registry().New(bus.Source("a"), receipt.Type, "w", receipt.Data{EventID: "e-1", EventType: testapp.WorkType, Outcome: receipt.Applied})
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name, reason string
		to           string
		ev           *ce.Event
	}{
		{"bad schema", "/work", "b", signed(signerA, badData)},
		{"bad signature", "is not the key of", "b", signed(forger, workEvent(t, "a", testapp.Work{}))},
		{"unsigned", "no signature", "b", workEvent(t, "a", testapp.Work{})},
		{"wrong addressee", "addressed to c, not to b", "c", signed(signerA, workEvent(t, "a", testapp.Work{}))},
		{"source not its sender", "does not match its sender a", "b", signed(signerX, workEvent(t, "x", testapp.Work{}))},
		{"refused by the handler", "no room", "b", signed(signerA, workEvent(t, "a", testapp.Work{Reject: "no room"}))},
		{"receipt for no event id", "not an event id", "b", signed(signerA, badReceipt)},
	}
	for _, c := range cases {
		publish(t, js, "a", c.to, c.ev, "")
	}
	if _, err := js.Publish(ctx, bus.Subject("a", "b", testapp.WorkType), []byte("not an event")); err != nil {
		t.Fatal(err)
	}
	good := signed(signerA, workEvent(t, "a", testapp.Work{}))
	publish(t, js, "a", "b", good, "")

	poll.Until(t, 10*time.Second, func() error {
		if effects(t, pool)[good.Subject()] != 1 {
			return fmt.Errorf("the good event after the bad ones is not applied")
		}
		return bustest.ConsumerIdle(ctx, js, "b")
	})
	rejections, err := inbox.Rejections(ctx, pool, 100)
	if err != nil {
		t.Fatal(err)
	}
	byID := map[string]inbox.Rejection{}
	for _, r := range rejections {
		byID[r.EventID] = r
	}
	for _, c := range cases {
		r, ok := byID[c.ev.ID()]
		if !ok || !strings.Contains(r.Reason, c.reason) {
			t.Errorf("%s: stored as %+v, want rejected for %q", c.name, r, c.reason)
		}
	}
	if len(rejections) != len(cases)+1 {
		t.Errorf("%d rejections, want %d", len(rejections), len(cases)+1)
	}
	var garbage bool
	for _, r := range rejections {
		garbage = garbage || r.Source == "" && strings.HasPrefix(r.EventID, "stream:") && strings.Contains(r.Reason, "malformed")
	}
	if !garbage {
		t.Errorf("the message that is no event is not stored by its stream sequence: %+v", rejections)
	}
	if eff := effects(t, pool); len(eff) != 1 {
		t.Errorf("rejected events had effects: %v", eff)
	}

	// Rejected events from a get a rejected receipt, with the reason.
	poll.Until(t, 5*time.Second, func() error {
		refused := map[string]string{}
		for _, m := range testapp.Messages(t, js, bus.Subject("b", "a", receipt.Type)) {
			for _, r := range receipts(t, m) {
				if r.Refused {
					refused[r.EventID.String()] = r.Reason
				}
			}
		}
		for _, c := range cases {
			switch c.name {
			case "source not its sender":
				continue // its receipt goes to x, whose name it bears
			case "receipt for no event id":
				continue // receipts get none
			}
			if !strings.Contains(refused[c.ev.ID()], c.reason) {
				return fmt.Errorf("%s: no rejected receipt for %q (have %v)", c.name, c.reason, refused)
			}
		}
		return nil
	})

	// The read side pages through what was received, in key order.
	var all []inbox.Received
	after := inbox.Received{}
	for {
		page, err := inbox.ListReceived(ctx, pool, testapp.WorkType, after.Source, after.EventID, 2)
		if err != nil {
			t.Fatal(err)
		}
		if len(page) == 0 {
			break
		}
		all, after = append(all, page...), page[len(page)-1]
	}
	want := 1 // the good one
	for _, c := range cases {
		if c.ev.Type() == testapp.WorkType {
			want++
		}
	}
	if len(all) != want || !slices.IsSortedFunc(all, func(a, b inbox.Received) int {
		return strings.Compare(a.Source+"\x00"+a.EventID, b.Source+"\x00"+b.EventID)
	}) {
		t.Errorf("ListReceived paged through %d events, want %d in key order", len(all), want)
	}
	if last, err := inbox.LastReceived(ctx, pool); err != nil || time.Since(last) > time.Minute {
		t.Errorf("LastReceived = %v, %v", last, err)
	}
}

// receipts decodes the receipts a message carries.
func receipts(t *testing.T, m *jetstream.RawStreamMsg) []receipt.Receipt {
	t.Helper()
	parts := [][]byte{m.Data}
	if event.IsBatch(m.Header) {
		var err error
		if parts, err = event.SplitBatch(m.Data); err != nil {
			t.Fatal(err)
		}
	}
	var out []receipt.Receipt
	for _, p := range parts {
		e, err := event.Decode(nil, p)
		if err != nil {
			t.Fatal(err)
		}
		r, err := receipt.Decode(e)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, r)
	}
	return out
}

// run runs a consumer until the test ends.
func run(t *testing.T, c *inbox.Consumer) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- c.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Error(err)
		}
	})
}

// An event that comes before the one it follows is deferred (Later) and
// redelivered, and the two apply in their order.
func TestLaterAppliesInOrder(t *testing.T) {
	t.Parallel()
	natsURL, js := testapp.NewBroker(t)
	_, pool := startNode(t, "b", natsURL, testapp.Config{})
	second := workEvent(t, "a", testapp.Work{Work: "w"})
	event.SetSequence(second, 2)
	first := workEvent(t, "a", testapp.Work{Work: "w"})
	event.SetSequence(first, 1)
	publish(t, js, "a", "b", second, "")
	poll.Until(t, 10*time.Second, func() error {
		if d := delivered(t, js, "b"); d < 1 {
			return fmt.Errorf("the second event is not delivered yet")
		}
		return nil
	})
	publish(t, js, "a", "b", first, "")
	poll.Until(t, 10*time.Second, func() error {
		if n := effects(t, pool)["w"]; n != 2 {
			return fmt.Errorf("%d of 2 events applied", n)
		}
		return bustest.ConsumerIdle(context.Background(), js, "b")
	})
	order, err := testapp.EffectOrder(context.Background(), pool, "w")
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(order, []int64{1, 2}) {
		t.Fatalf("applied in the order %v, want [1 2]", order)
	}
	if d := delivered(t, js, "b"); d < 3 {
		t.Fatalf("%d deliveries: the early event was not deferred and delivered again", d)
	}
}

// Receipts come back to the sender and are recorded once: a third node's
// receipt, though it comes first, changes nothing; the addressee's first
// receipt counts, and a later one, even a refusal, does not; the
// application is told of each (Receipted) and decides what counts.
func TestReceiptsComeBackAndCountOnce(t *testing.T) {
	t.Parallel()
	natsURL, js := testapp.NewBroker(t)
	ctx := context.Background()
	a, poolA := startNode(t, "a", natsURL, testapp.Config{})
	id, err := a.Send(ctx, "b")
	if err != nil {
		t.Fatal(err)
	}
	var sent *ce.Event
	poll.Until(t, 10*time.Second, func() error {
		msgs := testapp.Messages(t, js, bus.Subject("a", "b", ""))
		if len(msgs) == 0 {
			return fmt.Errorf("the work is not published")
		}
		sent, err = event.Decode(msgs[0].Header, msgs[0].Data)
		return err
	})
	receiptOf := func() (outcome, reason string, at *time.Time) {
		t.Helper()
		s, err := outbox.ListSent(ctx, poolA, testapp.WorkType, 0, 10)
		if err != nil || len(s) != 1 {
			t.Fatalf("sent %v, %v", s, err)
		}
		if s[0].ReceiptOutcome != nil {
			outcome, reason = *s[0].ReceiptOutcome, *s[0].ReceiptReason
		}
		return outcome, reason, s[0].ReceiptedAt
	}
	seen := func(k int) []testapp.ReceiptSeen {
		t.Helper()
		var rs []testapp.ReceiptSeen
		poll.Until(t, 10*time.Second, func() error {
			if rs, err = testapp.ReceiptsSeen(ctx, poolA); err == nil && len(rs) < k {
				err = fmt.Errorf("the application was told of %d receipts, want %d", len(rs), k)
			}
			return err
		})
		return rs
	}

	// A third node says it applied the work.
	if err := receipt.NewSender("c", js, nil).Send([]receipt.Answer{{Event: sent}}); err != nil {
		t.Fatal(err)
	}
	if rs := seen(1); rs[0].From != "c" || rs[0].Work != id {
		t.Fatalf("told of %+v", rs)
	}
	if o, _, _ := receiptOf(); o != "" {
		t.Fatalf("a third node's receipt was recorded as %q", o)
	}
	if d, _ := testapp.Delivered(ctx, poolA); d[id] {
		t.Fatal("the application took a third node's receipt for a delivery")
	}

	// The addressee starts, applies it and says so.
	startNode(t, "b", natsURL, testapp.Config{})
	poll.Until(t, 10*time.Second, func() error {
		if d, err := testapp.Delivered(ctx, poolA); err != nil || !d[id] {
			return fmt.Errorf("the work is not delivered (%v)", err)
		}
		return nil
	})
	o, _, at := receiptOf()
	if o != receipt.Applied {
		t.Fatalf("receipt recorded as %q", o)
	}

	// The addressee says otherwise later: too late.
	if err := receipt.NewSender("b", js, nil).Send([]receipt.Answer{{Event: sent, Refused: true, Reason: "changed my mind"}}); err != nil {
		t.Fatal(err)
	}
	seen(3)
	idle(t, js, "a")
	if o, r, at2 := receiptOf(); o != receipt.Applied || r != "" || !at2.Equal(*at) {
		t.Fatalf("a later receipt changed the record to %q %q", o, r)
	}
	if r, _ := testapp.Refused(ctx, poolA, id); r != "" {
		t.Fatalf("the application took a later refusal: %q", r)
	}
	c, err := bustest.Counts(ctx, poolA)
	if err != nil {
		t.Fatal(err)
	}
	if c.Awaiting != 0 || c.Outbox[testapp.WorkType].Receipted != 1 || len(c.Inbox) != 0 {
		t.Fatalf("sender's counts: %+v", c)
	}
}

// tracer records what a pool sends to Postgres, one entry per round trip.
type tracer struct {
	mu    sync.Mutex
	trips [][]string
}

func (tr *tracer) TraceQueryStart(ctx context.Context, _ *pgx.Conn, d pgx.TraceQueryStartData) context.Context {
	tr.mu.Lock()
	defer tr.mu.Unlock()
	tr.trips = append(tr.trips, []string{d.SQL})
	return ctx
}

func (tr *tracer) TraceQueryEnd(context.Context, *pgx.Conn, pgx.TraceQueryEndData) {}

func (tr *tracer) TraceBatchStart(ctx context.Context, _ *pgx.Conn, d pgx.TraceBatchStartData) context.Context {
	var trip []string
	for _, q := range d.Batch.QueuedQueries {
		trip = append(trip, q.SQL)
	}
	tr.mu.Lock()
	defer tr.mu.Unlock()
	tr.trips = append(tr.trips, trip)
	return ctx
}

func (tr *tracer) TraceBatchQuery(context.Context, *pgx.Conn, pgx.TraceBatchQueryData) {}
func (tr *tracer) TraceBatchEnd(context.Context, *pgx.Conn, pgx.TraceBatchEndData)     {}

// take returns the round trips recorded so far and forgets them.
func (tr *tracer) take() [][]string {
	tr.mu.Lock()
	defer tr.mu.Unlock()
	t := tr.trips
	tr.trips = nil
	return t
}

// The consumer's round trips to Postgres: a message of several receipts
// commits in one, a new event in two (the dedupe lookup, then the writes
// and COMMIT).
func TestRoundTrips(t *testing.T) {
	t.Parallel()
	_, js := testapp.NewBroker(t)
	url, pool := testapp.NewStore(t)
	ctx := context.Background()
	cfg, err := pgxpool.ParseConfig(url)
	if err != nil {
		t.Fatal(err)
	}
	tr := &tracer{}
	cfg.ConnConfig.Tracer = tr
	traced, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(traced.Close)
	ob := outbox.New(pool, "a", testapp.Registry(), nil)
	t.Cleanup(ob.Close)

	// Three events a sent to b, receipted in one message.
	var answers []receipt.Answer
	for range 3 {
		e := workEvent(t, "a", testapp.Work{})
		err := pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error { return ob.Enqueue(ctx, tx, outbox.Message{To: "b", Event: e}) })
		if err != nil {
			t.Fatal(err)
		}
		answers = append(answers, receipt.Answer{Event: e})
	}
	cons, err := bus.EnsureConsumer(ctx, js, "a", consumerConfig)
	if err != nil {
		t.Fatal(err)
	}
	run(t, inbox.NewConsumer("a", traced, cons, js, testapp.Registry(), ob, testapp.Handler{}, inbox.Options{BackOff: consumerConfig.BackOff}))
	if err := receipt.NewSender("b", js, nil).Send(answers); err != nil {
		t.Fatal(err)
	}
	poll.Until(t, 10*time.Second, func() error {
		c, err := bustest.Counts(ctx, pool)
		if err == nil && c.Outbox[testapp.WorkType].Receipted != 3 {
			err = fmt.Errorf("%d of 3 receipts recorded", c.Outbox[testapp.WorkType].Receipted)
		}
		return err
	})
	trips := tr.take()
	if len(trips) != 1 || trips[0][0] != "BEGIN" || trips[0][len(trips[0])-1] != "COMMIT" ||
		!slices.ContainsFunc(trips[0], func(q string) bool { return strings.Contains(q, "OutboxMarkReceipted") }) {
		t.Fatalf("a message of receipts took %d round trips: %q", len(trips), trips)
	}

	// A new event from b.
	e := workEvent(t, "b", testapp.Work{})
	publish(t, js, "b", "a", e, "")
	poll.Until(t, 10*time.Second, func() error {
		if effects(t, pool)[e.Subject()] != 1 {
			return fmt.Errorf("the event is not applied")
		}
		return nil
	})
	trips = tr.take()
	if len(trips) != 2 || trips[0][0] != "BEGIN" || !strings.Contains(trips[0][1], "InboxSeen") ||
		trips[1][len(trips[1])-1] != "COMMIT" {
		t.Fatalf("a new event took %d round trips: %q", len(trips), trips)
	}
}

// An event that cannot apply within its deliveries becomes a dead letter,
// recorded with its message by the consumer on its last delivery; once it
// can apply, Redrive applies it through the same path, once, without
// reading the stream (which a node may not).
func TestDeadLetterRecordedAndRedriven(t *testing.T) {
	t.Parallel()
	natsURL, js := testapp.NewBroker(t)
	ctx := context.Background()
	b, pool := startNode(t, "b", natsURL, testapp.Config{Consumer: bus.ConsumerConfig{
		AckWait: 2 * time.Second, BackOff: []time.Duration{20 * time.Millisecond}, MaxDeliver: 2,
	}})
	second := workEvent(t, "a", testapp.Work{Work: "w"})
	event.SetSequence(second, 2)
	publish(t, js, "a", "b", second, "")
	var dead []inbox.DeadLetter
	poll.Until(t, 10*time.Second, func() error {
		var err error
		if dead, err = b.Consumer.DeadLetters(ctx); err == nil && len(dead) != 1 {
			err = fmt.Errorf("%d dead letters", len(dead))
		}
		return err
	})
	if dead[0].Deliveries != 2 || dead[0].Subject != bus.Subject("a", "b", testapp.WorkType) ||
		!strings.Contains(dead[0].Reason, "not applied in 2 deliveries") {
		t.Fatalf("dead letter %+v", dead[0])
	}
	// Not yet: it still cannot apply, and stays.
	if n, err := b.Consumer.Redrive(ctx, nil); err != nil || n != 0 {
		t.Fatalf("Redrive settled %d (%v) of an event that cannot apply", n, err)
	}
	first := workEvent(t, "a", testapp.Work{Work: "w"})
	event.SetSequence(first, 1)
	publish(t, js, "a", "b", first, "")
	poll.Until(t, 10*time.Second, func() error {
		if n := effects(t, pool)["w"]; n != 1 {
			return fmt.Errorf("%d effects, want the first event's", n)
		}
		return nil
	})
	if n, err := b.Consumer.Redrive(ctx, nil); err != nil || n != 1 {
		t.Fatalf("Redrive settled %d (%v), want 1", n, err)
	}
	if n, err := b.Consumer.Redrive(ctx, nil); err != nil || n != 0 {
		t.Fatalf("a second Redrive settled %d (%v)", n, err)
	}
	if dead, err := b.Consumer.DeadLetters(ctx); err != nil || len(dead) != 0 {
		t.Fatalf("dead letters after the redrive: %v, %v", dead, err)
	}
	order, err := testapp.EffectOrder(ctx, pool, "w")
	if err != nil || !slices.Equal(order, []int64{1, 2}) {
		t.Fatalf("applied in the order %v (%v), want [1 2]", order, err)
	}
}

// An event whose acknowledgements never came in time (the consumer died
// on each delivery) is recorded from JetStream's advisory. A node that
// may not read the stream records it without its message, says so, and
// cannot re-drive it; a Redrive with a stream that may be read (the
// admin's) applies it.
func TestDeadLetterFromAdvisoryWithoutTheMessage(t *testing.T) {
	t.Parallel()
	natsURL, js := testapp.NewBroker(t)
	_, pool := testapp.NewStore(t)
	ctx := context.Background()
	cons, err := bus.EnsureConsumer(ctx, js, "b", bus.ConsumerConfig{AckWait: 300 * time.Millisecond, MaxDeliver: 2})
	if err != nil {
		t.Fatal(err)
	}
	ob := outbox.New(pool, "b", testapp.Registry(), nil)
	t.Cleanup(ob.Close)
	c := inbox.NewConsumer("b", pool, cons, js, testapp.Registry(), ob, testapp.Handler{}, inbox.Options{BackOff: consumerConfig.BackOff})
	nc, err := nats.Connect(natsURL)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	wctx, stop := context.WithCancel(ctx)
	watched := make(chan error, 1)
	go func() { watched <- c.WatchDeadLetters(wctx, nc, nil) }()
	t.Cleanup(func() { stop(); <-watched })

	e := workEvent(t, "a", testapp.Work{Work: "w"})
	publish(t, js, "a", "b", e, "")
	// Delivered twice and never acknowledged; JetStream gives up when it
	// would deliver it a third time.
	for i := range 3 {
		b, err := cons.Fetch(1, jetstream.FetchMaxWait(time.Second))
		if err != nil {
			t.Fatal(err)
		}
		if m := <-b.Messages(); (m != nil) != (i < 2) {
			t.Fatalf("fetch %d: %v", i+1, m)
		}
	}
	var dead []inbox.DeadLetter
	poll.Until(t, 10*time.Second, func() error {
		var err error
		if dead, err = c.DeadLetters(ctx); err == nil && len(dead) != 1 {
			err = fmt.Errorf("%d dead letters", len(dead))
		}
		return err
	})
	if dead[0].Deliveries != 2 || !strings.Contains(dead[0].Reason, "re-drive it with credentials that may") {
		t.Fatalf("dead letter %+v", dead[0])
	}
	if n, err := c.Redrive(ctx, nil); err == nil || n != 0 {
		t.Fatalf("Redrive without a stream settled %d (%v) of a dead letter without its message", n, err)
	}
	stream, err := js.Stream(ctx, bus.Stream)
	if err != nil {
		t.Fatal(err)
	}
	if n, err := c.Redrive(ctx, stream); err != nil || n != 1 {
		t.Fatalf("Redrive settled %d (%v), want 1", n, err)
	}
	if n := effects(t, pool)["w"]; n != 1 {
		t.Fatalf("%d effects, want 1", n)
	}
}
