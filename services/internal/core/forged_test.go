package core_test

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/refbus/refbus/pkg/bus"
	"github.com/refbus/refbus/pkg/event"
	"github.com/refbus/refbus/schemas"
	"github.com/refbus/refbus/services/internal/core/nodetest"
)

// Move events that must not apply are stored as rejected with a reason that
// names the problem, and change nothing: a move from a node that is not
// party to the referral, a move for a referral (and case) the receiver has
// never seen, and a move that names another case.
func TestForeignMovesRejected(t *testing.T) {
	t.Parallel()
	n := nodetest.New(t)
	n.Start("clinic", plain(healthCheck), nil)
	n.Start("legal_aid", plain(legalHelp), nil)
	r := n.Refer("clinic", "legal_aid", "legal_help", "", "")
	n.Both(r, "received")
	js := n.JetStream()
	cancel := func(from, referral, caseID string) {
		t.Helper()
		e, err := registry(t).New(bus.Source(from), schemas.TypeCancelled, referral, map[string]any{"reason": "x"})
		if err != nil {
			t.Fatal(err)
		}
		e.SetExtension(event.ExtCaseID, caseID)
		event.SetSequence(e, 2)
		publish(t, js, from, "legal_aid", e)
	}
	// social was never party to the clinic's referral to legal_aid.
	cancel("social", r.ID.String(), r.CaseID.String())
	// A referral, and a case, legal_aid never saw.
	cancel("clinic", uuid.NewString(), uuid.NewString())
	// The right referral under another case.
	cancel("clinic", r.ID.String(), uuid.NewString())

	nodetest.Eventually(t, 30*time.Second, func() error {
		reasons, err := rejectionReasons(n, "legal_aid")
		if err != nil {
			return err
		}
		all := strings.Join(reasons, " | ")
		if len(reasons) != 3 {
			return fmt.Errorf("%d rejections: %s", len(reasons), all)
		}
		for _, want := range []string{"social is not party", "has no referral", "belongs to case"} {
			if !strings.Contains(all, want) {
				return fmt.Errorf("no rejection says %q: %s", want, all)
			}
		}
		return nil
	})
	if got, _ := n.Referral("legal_aid", r.ID); got.Status != "received" {
		t.Fatalf("a rejected move changed the referral: %q", got.Status)
	}
	wantSteps(t, n, "legal_aid", r, "request", "receive")
}

// Only the node that sent a referral reports it overdue: another node
// that names itself as the sender of someone else's referral is refused,
// and the referral is not marked.
func TestForeignOverdueRejected(t *testing.T) {
	t.Parallel()
	n := nodetest.New(t)
	n.Start("clinic", plain(healthCheck), nil)
	n.Start("legal_aid", plain(legalHelp), nil)
	r := n.Refer("clinic", "legal_aid", "legal_help", "", "")
	n.Both(r, "received")
	e, err := registry(t).New(bus.Source("social"), schemas.TypeOverdue, r.ID.String(), map[string]any{
		"kind": "accept", "due_at": time.Now().Add(-time.Hour).UTC().Format(time.RFC3339),
		"from_agency": "social", "to_agency": "legal_aid", "service": "legal_help"})
	if err != nil {
		t.Fatal(err)
	}
	e.SetExtension(event.ExtCaseID, r.CaseID.String())
	event.SetSequence(e, 1)
	publish(t, n.JetStream(), "social", "legal_aid", e)
	nodetest.Eventually(t, 30*time.Second, func() error {
		reasons, err := rejectionReasons(n, "legal_aid")
		if err == nil && !containsOne(reasons, e.ID()+": referral "+r.ID.String()+" came from clinic, not from social") {
			err = fmt.Errorf("no rejection of another node's overdue report: %q", reasons)
		}
		return err
	})
	if got, _ := n.Referral("legal_aid", r.ID); got.Overdue {
		t.Fatal("another node's overdue report marked the referral overdue")
	}
}
