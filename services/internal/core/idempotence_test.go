package core_test

import (
	"context"
	"testing"

	ce "github.com/cloudevents/sdk-go/v2/event"
	"github.com/jackc/pgx/v5"

	"github.com/refbus/refbus/pkg/bus"
	"github.com/refbus/refbus/pkg/event"
	"github.com/refbus/refbus/pkg/pgbatch"
	"github.com/refbus/refbus/pkg/receipt"
	"github.com/refbus/refbus/services/internal/core/nodetest"
)

// The inbox applies an event once (pkg/inbox's tests prove it); the core's
// effects are idempotent by themselves too, the second layer of the
// guarantee. Here events already applied are applied again straight
// through the application's handler, past the inbox: a referral request,
// a move and a receipt change nothing the second time, neither the
// referral, nor its timeline, nor what the receiver's kind was told.
func TestEffectsAreIdempotentWithoutTheInbox(t *testing.T) {
	t.Parallel()
	n := nodetest.New(t)
	n.Start("sender", nodetest.PlainKind("plain"), nil)
	n.Start("receiver", ledgerKind(), nil)

	r := n.Refer("sender", "receiver", "help", "", "")
	n.Both(r, "received")
	n.Move("receiver", r.ID, "accept", "")
	n.Both(r, "accepted")

	js := n.JetStream()
	again := func(node, subject string) {
		t.Helper()
		ctx := context.Background()
		st, err := js.Stream(ctx, bus.Stream)
		if err != nil {
			t.Fatal(err)
		}
		m, err := st.GetLastMsgForSubject(ctx, subject)
		if err != nil {
			t.Fatalf("read %s from the stream: %v", subject, err)
		}
		evs := []*ce.Event{}
		if event.IsBatch(m.Header) {
			parts, err := event.SplitBatch(m.Data)
			if err != nil {
				t.Fatal(err)
			}
			for _, p := range parts {
				ev, err := event.Decode(nil, p)
				if err != nil {
					t.Fatal(err)
				}
				evs = append(evs, ev)
			}
		} else {
			ev, err := event.Decode(m.Header, m.Data)
			if err != nil {
				t.Fatal(err)
			}
			evs = append(evs, ev)
		}
		conn, err := pgx.Connect(ctx, n.DB(node))
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close(ctx)
		tx := pgbatch.Begin(conn)
		h := n.App(node).Handler()
		if evs[0].Type() == receipt.Type {
			var rs []receipt.Receipt
			for _, ev := range evs {
				rc, err := receipt.Decode(ev)
				if err != nil {
					t.Fatal(err)
				}
				rs = append(rs, rc)
			}
			err = h.Receipted(ctx, tx, rs)
		} else {
			_, err = h.Apply(ctx, tx, evs)
		}
		if err != nil {
			t.Fatalf("apply %s again at %s: %v", subject, node, err)
		}
		if err := tx.Commit(ctx); err != nil {
			t.Fatal(err)
		}
	}
	again("receiver", "refbus.sender.receiver.referral.requested")
	again("sender", "refbus.receiver.sender.referral.accepted")
	again("sender", "refbus.receiver.sender.receipt")

	for _, node := range []string{"sender", "receiver"} {
		got, err := n.Referral(node, r.ID)
		if err != nil {
			t.Fatal(err)
		}
		if got.Status != "accepted" {
			t.Errorf("%s sees the referral as %s after events applied again, want accepted", node, got.Status)
		}
		accepts := 0
		for _, s := range n.Case(node, r.CaseID).Timeline {
			if s.Move == "accept" {
				accepts++
			}
		}
		if accepts != 1 {
			t.Errorf("%s's timeline has %d accept steps, want 1", node, accepts)
		}
	}
	if told := heard(t, n, "receiver")[r.ID]; told != 1 {
		t.Errorf("the receiver's kind was told %d times it received the referral, want 1", told)
	}
}
