package receipt_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	ce "github.com/cloudevents/sdk-go/v2/event"
	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

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

func work(t *testing.T, from string) *ce.Event {
	t.Helper()
	e, err := testapp.Event(from, testapp.Work{Work: uuid.NewString()})
	if err != nil {
		t.Fatal(err)
	}
	return e
}

// A receiver's receipts go one message per node they answer (a batch when
// there are several), signed and chained, and decode on the other side to
// what the receiver said; receipts, the node's own events and events from
// no node are not answered.
func TestSendGroupsByNodeAndDecodes(t *testing.T) {
	t.Parallel()
	_, js := testapp.NewBroker(t)
	signer, _ := testapp.NewSigner(t)
	a1, a2, a3, g := work(t, "alpha"), work(t, "alpha"), work(t, "alpha"), work(t, "gamma")
	a1.SetExtension(event.ExtTraceparent, "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01")
	own := work(t, "beta")
	stray := work(t, "alpha")
	stray.SetSource("/elsewhere/alpha")
	answered := work(t, "alpha")
	rcpt, err := testapp.Registry().New(bus.Source("alpha"), receipt.Type, answered.Subject(),
		receipt.Data{EventID: answered.ID(), EventType: testapp.WorkType, Outcome: receipt.Applied})
	if err != nil {
		t.Fatal(err)
	}
	err = receipt.NewSender("beta", js, signer).Send([]receipt.Answer{
		{Event: a1, StreamSeq: 1},
		{Event: a2, StreamSeq: 2, Refused: true, Reason: "no room"},
		{Event: g, StreamSeq: 3},
		{Event: a3, StreamSeq: 4},
		{Event: rcpt, StreamSeq: 5},
		{Event: own, StreamSeq: 6},
		{Event: stray, StreamSeq: 7},
		{Event: nil},
	})
	if err != nil {
		t.Fatal(err)
	}

	// Send does not wait for the broker.
	poll.Until(t, 5*time.Second, func() error {
		if n := len(testapp.Messages(t, js, "")); n < 2 {
			return fmt.Errorf("%d messages stored", n)
		}
		return nil
	})
	toAlpha := testapp.Messages(t, js, bus.Subject("beta", "alpha", receipt.Type))
	toGamma := testapp.Messages(t, js, bus.Subject("beta", "gamma", receipt.Type))
	if all := testapp.Messages(t, js, ""); len(toAlpha) != 1 || len(toGamma) != 1 || len(all) != 2 {
		t.Fatalf("%d messages to alpha, %d to gamma, %d in all; want one to each", len(toAlpha), len(toGamma), len(all))
	}
	if !event.IsBatch(toAlpha[0].Header) || event.IsBatch(toGamma[0].Header) {
		t.Fatal("want a batch to alpha and a single receipt to gamma")
	}
	parts, err := event.SplitBatch(toAlpha[0].Data)
	if err != nil {
		t.Fatal(err)
	}
	trust := event.Trust{"beta": signer.PublicKey()}
	prev := event.GenesisHash
	want := []struct {
		ev      *ce.Event
		refused bool
		reason  string
	}{{a1, false, ""}, {a2, true, "no room"}, {a3, false, ""}}
	for i, p := range parts {
		e, err := event.Decode(nil, p)
		if err != nil {
			t.Fatal(err)
		}
		if err := event.Verify(e, trust); err != nil {
			t.Fatal(err)
		}
		if event.PrevHash(e) != prev {
			t.Fatalf("receipt %d is not chained to the one before", i)
		}
		prev, _ = event.ChainHash(e)
		r, err := receipt.Decode(e)
		if err != nil {
			t.Fatal(err)
		}
		w := want[i]
		if r.EventID.String() != w.ev.ID() || r.EventType != testapp.WorkType || r.Subject != w.ev.Subject() ||
			r.From != "beta" || r.Refused != w.refused || r.Reason != w.reason {
			t.Fatalf("receipt %d decodes to %+v, want one for %s", i, r, w.ev.ID())
		}
	}
	first, _ := event.Decode(nil, parts[0])
	if tp, _ := first.Extensions()[event.ExtTraceparent].(string); tp == "" {
		t.Fatal("the receipt does not carry the trace of the event it answers")
	}
}

// Decode refuses, with a reason, what is not a receipt of this bus.
func TestDecodeRefuses(t *testing.T) {
	t.Parallel()
	reg := testapp.Registry()
	build := func(source string, d any) *ce.Event {
		t.Helper()
		e, err := reg.Build(source, receipt.Type, "s", d)
		if err != nil {
			t.Fatal(err)
		}
		return e
	}
	good := receipt.Data{EventID: uuid.NewString(), EventType: "t", Outcome: receipt.Applied}
	notUUID := good
	notUUID.EventID = "e-1"
	badOutcome := good
	badOutcome.Outcome = "maybe"
	for _, c := range []struct {
		name, want string
		ev         *ce.Event
	}{
		{"not a receipt", "not a receipt", work(t, "beta")},
		{"source not a node", "not a node", build("/elsewhere/beta", good)},
		{"event id not a UUID", "not an event id", build(bus.Source("beta"), notUUID)},
		{"outcome outside the schema", "outcome", build(bus.Source("beta"), badOutcome)},
	} {
		if _, err := receipt.Decode(c.ev); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: Decode returned %v, want an error about %q", c.name, err, c.want)
		}
	}
	if _, err := receipt.Decode(build(bus.Source("beta"), good)); err != nil {
		t.Fatalf("a good receipt: %v", err)
	}
}

// Only the first receipt of an event counts, and only from the node it
// was addressed to: a third node's receipt, even if it comes first, and
// later receipts change nothing.
func TestRecordFirstReceiptFromAddressee(t *testing.T) {
	t.Parallel()
	_, pool := testapp.NewStore(t)
	ctx := context.Background()
	ob := outbox.New(pool, "alpha", testapp.Registry(), nil)
	t.Cleanup(ob.Close)
	e := work(t, "alpha")
	err := pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error { return ob.Enqueue(ctx, tx, outbox.Message{To: "beta", Event: e}) })
	if err != nil {
		t.Fatal(err)
	}
	id := uuid.MustParse(e.ID())
	check := func(step, outcome, reason string, awaiting int64) {
		t.Helper()
		sent, err := outbox.ListSent(ctx, pool, testapp.WorkType, 0, 10)
		if err != nil {
			t.Fatal(err)
		}
		var gotOutcome, gotReason string
		if s := sent[0]; s.ReceiptOutcome != nil {
			gotOutcome, gotReason = *s.ReceiptOutcome, *s.ReceiptReason
		}
		c, err := bustest.Counts(ctx, pool)
		if err != nil {
			t.Fatal(err)
		}
		if gotOutcome != outcome || gotReason != reason || c.Awaiting != awaiting {
			t.Fatalf("after %s: receipt %q %q, %d awaiting; want %q %q, %d", step, gotOutcome, gotReason, c.Awaiting, outcome, reason, awaiting)
		}
	}
	record := func(rs ...receipt.Receipt) {
		t.Helper()
		if err := receipt.Record(ctx, pool, rs); err != nil {
			t.Fatal(err)
		}
	}
	record(receipt.Receipt{EventID: id, From: "gamma"}, receipt.Receipt{EventID: uuid.New(), From: "beta"})
	check("a third node's receipt", "", "", 1)
	record(receipt.Receipt{EventID: id, From: "beta", Refused: true, Reason: "no room"})
	check("the addressee's receipt", "rejected", "no room", 0)
	record(receipt.Receipt{EventID: id, From: "beta"})
	check("a second receipt", "rejected", "no room", 0)
}
