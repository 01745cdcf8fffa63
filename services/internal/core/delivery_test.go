package core_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/refbus/refbus/pkg/bus"
	"github.com/refbus/refbus/pkg/bustest"
	"github.com/refbus/refbus/pkg/event"
	"github.com/refbus/refbus/pkg/inbox"
	"github.com/refbus/refbus/pkg/outbox"
	"github.com/refbus/refbus/pkg/receipt"
	"github.com/refbus/refbus/schemas"
	"github.com/refbus/refbus/services/internal/core"
	"github.com/refbus/refbus/services/internal/core/app"
	"github.com/refbus/refbus/services/internal/core/nodetest"
)

// A referral crosses from one node to another over HTTP and the bus, and
// the receipt comes back.
func TestReferralCrossesAndReceiptReturns(t *testing.T) {
	t.Parallel()
	n := nodetest.New(t)
	n.Start("clinic", plain(healthCheck), nil)
	n.Start("legal_aid", ledgerKind(legalHelp), nil)

	status, body, _ := n.Do("clinic", "POST", "/api/v1/referrals", n.Consented("clinic", `{"to_org":"legal_aid","service":"legal_help","note":"mother and two children need advice on custody"}`))
	if status != 201 {
		t.Fatalf("create: %d %s", status, body)
	}
	created := nodetest.Decode[app.Referral](t, body)
	if created.Status != "requested" || created.CaseID == uuid.Nil || created.FromAgency != "clinic" || created.ToAgency != "legal_aid" {
		t.Fatalf("created: %+v", created)
	}

	nodetest.Eventually(t, 30*time.Second, func() error {
		_, body, _ := n.Do("legal_aid", "GET", "/api/v1/inbox", "")
		in := nodetest.Decode[struct{ Referrals []app.Referral }](t, body)
		if len(in.Referrals) != 1 {
			return fmt.Errorf("legal_aid's inbox has %d referrals", len(in.Referrals))
		}
		got := in.Referrals[0]
		if got.ID != created.ID || got.CaseID != created.CaseID || got.Status != "received" || got.Note != created.Note || got.Service != "legal_help" || got.FromAgency != "clinic" {
			return fmt.Errorf("legal_aid's inbox shows %+v", got)
		}
		return nil
	})
	nodetest.Eventually(t, 30*time.Second, func() error {
		_, body, _ := n.Do("clinic", "GET", "/api/v1/referrals/"+created.ID.String(), "")
		if r := nodetest.Decode[app.Referral](t, body); r.Status != "received" {
			return fmt.Errorf("the clinic sees %q", r.Status)
		}
		return nil
	})
	receivedOnce(t, n, "clinic", "legal_aid", []uuid.UUID{created.ID}, "received")
	wantSteps(t, n, "clinic", created, "request", "receive")
	if c := n.Counts("clinic"); c.Outbox[schemas.TypeRequested].Receipted != 1 || c.Inbox[schemas.TypeReceipt]["applied"] != 0 {
		t.Fatalf("the clinic's bus tables: %+v", c)
	}
}

// killAt is a fault hook that stops its part at stage, and every time
// after; fired closes the first time.
func killAt[S comparable](stage S) (hook func(S) error, fired <-chan struct{}) {
	ch := make(chan struct{})
	var mu sync.Mutex
	dead := false
	return func(s S) error {
		mu.Lock()
		defer mu.Unlock()
		if s == stage && !dead {
			dead = true
			close(ch)
		}
		if dead {
			return errors.New("killed")
		}
		return nil
	}, ch
}

// waitFired waits for a fault hook to fire.
func waitFired(t *testing.T, fired <-chan struct{}, what string) {
	t.Helper()
	select {
	case <-fired:
	case <-time.After(30 * time.Second):
		t.Fatalf("%s: the fault never fired", what)
	}
}

// The relay stops after the referral's commit and before (or after) its
// publish; after a restart the referral still arrives, once.
func TestRelayCrashLosesNothing(t *testing.T) {
	t.Parallel()
	for _, stage := range []outbox.Stage{outbox.BeforePublish, outbox.BeforeMark} {
		t.Run(stage.String(), func(t *testing.T) {
			t.Parallel()
			n := nodetest.New(t)
			n.Start("legal_aid", ledgerKind(legalHelp), nil)
			hook, fired := killAt(stage)
			crashing := n.Start("clinic", plain(healthCheck), func(c *core.Config) { c.Relay.Fault = hook })
			r := create(t, n, "clinic", "legal_aid", "legal_help")
			waitFired(t, fired, "relay "+stage.String())
			if err := crashing.Stop(); !errors.Is(err, outbox.ErrFault) {
				t.Fatalf("the clinic stopped with %v, want the relay's fault", err)
			}
			// Where it stopped: nothing on the stream before publishing;
			// published but not recorded before marking.
			onStream := n.EventsTo("legal_aid", r.ID.String())
			published := n.Counts("clinic").Outbox[schemas.TypeRequested].Published
			switch {
			case stage == outbox.BeforePublish && onStream:
				t.Fatal("the relay published before it was killed before publishing")
			case stage == outbox.BeforeMark && (!onStream || published != 0):
				t.Fatalf("killed before marking: on the stream %v, recorded published %d", onStream, published)
			}

			n.Restart("clinic", nil)
			receivedOnce(t, n, "clinic", "legal_aid", []uuid.UUID{r.ID}, "received")
			wantSteps(t, n, "legal_aid", r, "request", "receive")
			if c := n.Counts("clinic"); c.Outbox[schemas.TypeRequested] != (bustest.OutboxCounts{Written: 1, Published: 1, Receipted: 1}) {
				t.Fatalf("the clinic's outbox: %+v", c.Outbox)
			}
		})
	}
}

// republish publishes every message on the stream from node from to node
// to again: first as it was, which JetStream must drop as a duplicate of
// its Nats-Msg-Id, then under a new id, past JetStream's dedupe, as the
// relay's re-send does. It returns how many copies got in.
func republish(t *testing.T, js jetstream.JetStream, from, to string) int {
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
	prefix := bus.Subject(from, to, "")
	k := 0
	for seq := info.State.FirstSeq; seq <= info.State.LastSeq; seq++ {
		raw, err := s.GetMsg(ctx, seq)
		if err != nil {
			t.Fatal(err)
		}
		if !strings.HasPrefix(raw.Subject, prefix) {
			continue
		}
		m := &nats.Msg{Subject: raw.Subject, Header: nats.Header{}, Data: raw.Data}
		for h, v := range raw.Header {
			m.Header[h] = slices.Clone(v)
		}
		ack, err := js.PublishMsg(ctx, m)
		if err != nil {
			t.Fatal(err)
		}
		if !ack.Duplicate {
			t.Fatalf("JetStream kept a copy of message %d with the same Nats-Msg-Id", seq)
		}
		m.Header.Set(nats.MsgIdHdr, m.Header.Get(nats.MsgIdHdr)+"#again")
		if ack, err = js.PublishMsg(ctx, m); err != nil || ack.Duplicate {
			t.Fatalf("a copy of message %d under a new Nats-Msg-Id: %+v %v", seq, ack, err)
		}
		k++
	}
	if k == 0 {
		t.Fatalf("no message from %s to %s to publish again", from, to)
	}
	return k
}

// delivered waits until k more messages than before were delivered to
// node name's consumer, and it has nothing in flight.
func delivered(t *testing.T, n *nodetest.Network, js jetstream.JetStream, name string, before uint64, k int) {
	t.Helper()
	idle := n.ConsumerIdle(name)
	nodetest.Eventually(t, 30*time.Second, func() error {
		if d := consumerInfo(t, js, name).Delivered.Consumer; d < before+uint64(k) {
			return fmt.Errorf("%d of %d copies delivered to %s", d-before, k, name)
		}
		return idle()
	})
}

// The same events published again, with the same message id and with a
// new one past JetStream's dedupe, are applied once: the referral request
// (received once, its kind told once) and the move that answers it (one
// step in the timelines).
func TestDuplicateEventAppliedOnce(t *testing.T) {
	t.Parallel()
	n := nodetest.New(t)
	n.Start("clinic", plain(healthCheck), nil)
	n.Start("legal_aid", ledgerKind(legalHelp), nil)
	js := n.JetStream()
	r := n.Refer("clinic", "legal_aid", "legal_help", "", "")
	n.Both(r, "received")
	nodetest.Eventually(t, 30*time.Second, n.ConsumerIdle("legal_aid"))

	before := consumerInfo(t, js, "legal_aid").Delivered.Consumer
	delivered(t, n, js, "legal_aid", before, republish(t, js, "clinic", "legal_aid"))
	receivedOnce(t, n, "clinic", "legal_aid", []uuid.UUID{r.ID}, "received")

	n.Move("legal_aid", r.ID, "accept", ``)
	n.Both(r, "accepted")
	nodetest.Eventually(t, 30*time.Second, n.ConsumerIdle("clinic"))
	before = consumerInfo(t, js, "clinic").Delivered.Consumer
	delivered(t, n, js, "clinic", before, republish(t, js, "legal_aid", "clinic"))

	receivedOnce(t, n, "clinic", "legal_aid", []uuid.UUID{r.ID}, "accepted")
	for _, node := range []string{"clinic", "legal_aid"} {
		wantSteps(t, n, node, r, "request", "receive", "accept")
		if got, _ := n.Referral(node, r.ID); got.Status != "accepted" {
			t.Errorf("%s sees the referral %q, want accepted", node, got.Status)
		}
	}
	c := n.Counts("legal_aid")
	if c.Applied(schemas.TypeRequested) != 1 || c.Rejected(schemas.TypeRequested) != 0 {
		t.Errorf("legal_aid's inbox: %+v", c.Inbox)
	}
}

// A consumer dies after its commit and before its ack; the redelivered
// event is applied once. First the receiver's, on the referral request,
// then the sender's, on the move that answers it.
func TestConsumerCrashAfterCommitAppliesOnce(t *testing.T) {
	t.Parallel()
	n := nodetest.New(t)
	js := n.JetStream()
	var armed atomic.Bool
	var accepted uuid.UUID
	clinicFired := make(chan struct{})
	var clinicOnce sync.Once
	clinic := n.Start("clinic", plain(healthCheck), func(c *core.Config) {
		// It fires after the commit that applied legal_aid's accept.
		c.Inbox.Fault = func(s inbox.Stage) error {
			if s != inbox.AfterCommit || !armed.Load() {
				return nil
			}
			if r, err := n.Referral("clinic", accepted); err != nil || r.Status != "accepted" {
				return nil
			}
			clinicOnce.Do(func() { close(clinicFired) })
			return errors.New("consumer killed")
		}
	})
	hook, fired := killAt(inbox.AfterCommit)
	crashing := n.Start("legal_aid", ledgerKind(legalHelp), func(c *core.Config) { c.Inbox.Fault = hook })

	r := create(t, n, "clinic", "legal_aid", "legal_help")
	waitFired(t, fired, "legal_aid's consumer")
	// The effect committed before the crash: the referral is there, its
	// kind told, and JetStream still waits for the ack.
	if _, err := n.Referral("legal_aid", r.ID); err != nil {
		t.Fatalf("the committed referral is missing after the crash: %v", err)
	}
	if h := heard(t, n, "legal_aid"); h[r.ID] != 1 {
		t.Fatalf("legal_aid's kind heard of the referral %d times before the crash, want once", h[r.ID])
	}
	if info := consumerInfo(t, js, "legal_aid"); info.NumAckPending == 0 {
		t.Fatal("the consumer was killed after its commit, and JetStream awaits no ack")
	}
	if err := crashing.Stop(); !errors.Is(err, inbox.ErrFault) {
		t.Fatalf("legal_aid stopped with %v, want the consumer's fault", err)
	}
	n.Restart("legal_aid", nil)
	receivedOnce(t, n, "clinic", "legal_aid", []uuid.UUID{r.ID}, "received")
	if info := consumerInfo(t, js, "legal_aid"); info.Delivered.Consumer < 2 {
		t.Fatalf("the request was delivered %d times; the test did not exercise a redelivery", info.Delivered.Consumer)
	}
	if c := n.Counts("clinic"); c.Outbox[schemas.TypeRequested].Receipted != 1 {
		t.Fatalf("the clinic's outbox: %+v", c.Outbox)
	}

	accepted = r.ID
	armed.Store(true)
	n.Move("legal_aid", r.ID, "accept", ``)
	waitFired(t, clinicFired, "the clinic's consumer")
	if info := consumerInfo(t, js, "clinic"); info.NumAckPending == 0 {
		t.Fatal("the clinic's consumer was killed after its commit, and JetStream awaits no ack")
	}
	if err := clinic.Stop(); !errors.Is(err, inbox.ErrFault) {
		t.Fatalf("the clinic stopped with %v, want the consumer's fault", err)
	}
	n.Restart("clinic", nil)
	nodetest.Eventually(t, 30*time.Second, n.ConsumerIdle("clinic"))
	receivedOnce(t, n, "clinic", "legal_aid", []uuid.UUID{r.ID}, "accepted")
	for _, node := range []string{"clinic", "legal_aid"} {
		wantSteps(t, n, node, r, "request", "receive", "accept")
	}
}

// An event whose data breaks its schema, and a message that is not an event
// at all, are stored as rejected with the reason; the next good event flows.
func TestPoisonEventsRejectedAndFlowContinues(t *testing.T) {
	t.Parallel()
	n := nodetest.New(t)
	n.Start("legal_aid", plain(legalHelp), nil)
	n.Start("clinic", plain(healthCheck), nil)
	js := n.JetStream()
	ctx := context.Background()

	bad := requestedEvent(t, n, "clinic", map[string]any{"to_agency": "legal_aid", "service": "legal_help", "note": "ok"})
	// Break the data after it was built, as a buggy sender would.
	if err := bad.SetData("application/json", map[string]any{"to_agency": "legal_aid", "note": 42}); err != nil {
		t.Fatal(err)
	}
	publish(t, js, "clinic", "legal_aid", bad)
	if _, err := js.Publish(ctx, bus.Subject("clinic", "legal_aid", schemas.TypeRequested), []byte("not json at all")); err != nil {
		t.Fatal(err)
	}
	good := create(t, n, "clinic", "legal_aid", "legal_help")
	nodetest.Eventually(t, 30*time.Second, n.WantStatus("clinic", good.ID, "received"))

	var reasons []string
	nodetest.Eventually(t, 30*time.Second, func() error {
		var err error
		if reasons, err = rejectionReasons(n, "legal_aid"); err != nil {
			return err
		}
		if len(reasons) != 2 {
			return fmt.Errorf("%d rejections: %v", len(reasons), reasons)
		}
		return nil
	})
	all := strings.Join(reasons, " | ")
	for _, want := range []string{"service", "note", "not JSON"} {
		if !strings.Contains(all, want) {
			t.Errorf("rejection reasons %q do not mention %q", all, want)
		}
	}
	if r, err := n.Referral("legal_aid", nodetest.MustUUID(t, bad.Subject())); err == nil {
		t.Fatalf("the rejected referral was applied: %+v", r)
	}
	// The two receipts on the bus: the good referral's and the rejection
	// of the broken one (the unreadable message has no sender to answer).
	cons, err := js.OrderedConsumer(ctx, bus.Stream, jetstream.OrderedConsumerConfig{FilterSubjects: []string{bus.Subject("legal_aid", "clinic", schemas.TypeReceipt)}})
	if err != nil {
		t.Fatal(err)
	}
	outcomes := map[string]string{}
	for len(outcomes) < 2 {
		m, err := cons.Next(jetstream.FetchMaxWait(10 * time.Second))
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
			var d receipt.Data
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
	// the consumer is idle, nothing more is delivered for several ack waits.
	nodetest.Eventually(t, 30*time.Second, n.ConsumerIdle("legal_aid"))
	before := consumerInfo(t, js, "legal_aid").Delivered.Consumer
	nodetest.Consistently(t, 2500*time.Millisecond, func() error {
		if now := consumerInfo(t, js, "legal_aid").Delivered.Consumer; now != before {
			return fmt.Errorf("legal_aid's consumer went on delivering: %d, then %d", before, now)
		}
		return nil
	})
}

// 1,000 referrals sent at once from three nodes to each other and to a
// fourth all arrive exactly once.
func TestThousandReferralsFromThreeNodes(t *testing.T) {
	t.Parallel()
	n := nodetest.New(t)
	services := map[string]string{"clinic": "child_health_check", "school": "school_transfer", "social": "family_support", "legal_aid": "legal_help"}
	nodes := []string{"clinic", "school", "social", "legal_aid"}
	n.Start("clinic", ledgerKind(healthCheck), nil)
	n.Start("school", ledgerKind(schoolTransfer), nil)
	n.Start("social", ledgerKind(familySupport), nil)
	n.Start("legal_aid", ledgerKind(legalHelp), nil)
	senders := nodes[:3]
	const total = 1000
	consents := map[[2]string]uuid.UUID{}
	for _, from := range senders {
		for _, to := range nodes {
			if to != from {
				consents[[2]string{from, to}] = n.Consent(from, to)
			}
		}
	}
	type sent struct {
		from, to string
		id       uuid.UUID
	}
	refs := make([]sent, total)
	var wg sync.WaitGroup
	errs := make(chan error, total)
	sem := make(chan struct{}, 32)
	for i := range total {
		from := senders[i%3]
		to := nodes[(i/3)%4]
		if to == from {
			to = "legal_aid"
		}
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			r, err := n.App(from).CreateReferral(context.Background(), app.NewReferral{ToOrg: to, ConsentID: consents[[2]string{from, to}], Service: services[to], Note: fmt.Sprint(i)})
			if err != nil {
				errs <- err
				return
			}
			refs[i] = sent{from, to, r.ID}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	byPair := map[[2]string][]uuid.UUID{}
	for _, r := range refs {
		byPair[[2]string{r.from, r.to}] = append(byPair[[2]string{r.from, r.to}], r.id)
	}
	nodetest.Eventually(t, 90*time.Second, func() error {
		for pair, ids := range byPair {
			if err := allStatus(n, pair[0], ids, "received")(); err != nil {
				return err
			}
		}
		return nil
	})
	for pair, ids := range byPair {
		receivedOnce(t, n, pair[0], pair[1], ids, "received")
	}
	var applied, receipted, written int64
	for _, node := range nodes {
		c := n.Counts(node)
		applied += c.Applied(schemas.TypeRequested)
		receipted += c.Outbox[schemas.TypeRequested].Receipted
		written += c.Outbox[schemas.TypeRequested].Written
		if c.Rejected(schemas.TypeRequested) != 0 || c.Rejected(schemas.TypeReceipt) != 0 {
			t.Fatalf("%s rejected events: %+v", node, c.Inbox)
		}
		if k := len(heard(t, n, node)); int64(k) != c.Applied(schemas.TypeRequested) {
			t.Fatalf("%s's kind heard of %d referrals, its inbox applied %d", node, k, c.Applied(schemas.TypeRequested))
		}
	}
	if applied != total || receipted != total || written != total {
		t.Fatalf("written %d, applied %d, receipted %d; want %d each", written, applied, receipted, total)
	}
}
