package agency_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/refbus/refbus/pkg/bus"
	"github.com/refbus/refbus/pkg/event"
	"github.com/refbus/refbus/schemas"
)

// Move events that must not apply are stored as rejected with a reason that
// names the problem, and change nothing: a move from an agency that is not
// party to the referral, a move for a referral (and case) the receiver has
// never seen, and a move that names another case.
func TestForeignMovesRejected(t *testing.T) {
	t.Parallel()
	n := newNetwork(t, "health", "ngo")
	r := n.refer("health", "ngo", "legal_help", "")
	n.both(r, "received")
	reg, err := schemas.Registry()
	if err != nil {
		t.Fatal(err)
	}
	publish := func(from, to, typ, referral, caseID string, data map[string]any) {
		t.Helper()
		e, err := reg.New(bus.Source(from), typ, referral, data)
		if err != nil {
			t.Fatal(err)
		}
		e.SetExtension(event.ExtCaseID, caseID)
		event.SetSequence(e, 2)
		msg, err := event.NewMsg(bus.Subject(from, to, typ), e)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := n.jetstream().PublishMsg(context.Background(), msg); err != nil {
			t.Fatal(err)
		}
	}
	// social was never party to health's referral to ngo.
	publish("social", "ngo", "org.refbus.referral.cancelled.v1", r.ID.String(), r.CaseID.String(), map[string]any{"reason": "x"})
	// A referral, and a case, ngo never saw.
	publish("health", "ngo", "org.refbus.referral.cancelled.v1", uuid.NewString(), uuid.NewString(), map[string]any{"reason": "x"})
	// The right referral under another case.
	publish("health", "ngo", "org.refbus.referral.cancelled.v1", r.ID.String(), uuid.NewString(), map[string]any{"reason": "x"})

	eventually(t, 10*time.Second, func() error {
		rej, err := n.svc("ngo").svc.Rejections(context.Background(), 10)
		if err != nil {
			return err
		}
		if len(rej) != 3 {
			return fmt.Errorf("%d rejections", len(rej))
		}
		var reasons []string
		for _, x := range rej {
			reasons = append(reasons, x.Reason)
		}
		all := strings.Join(reasons, " | ")
		for _, want := range []string{"social is not party", "has no referral", "belongs to case"} {
			if !strings.Contains(all, want) {
				return fmt.Errorf("no rejection says %q: %s", want, all)
			}
		}
		return nil
	})
	if got, _ := n.referralStatus("ngo", r.ID.String()); got.Status != "received" {
		t.Fatalf("a rejected move changed the referral: %q", got.Status)
	}
}
