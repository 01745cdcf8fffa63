package core_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/refbus/refbus/services/internal/core/app"
	"github.com/refbus/refbus/services/internal/core/nodetest"
)

// moves lists a timeline as "node:move=status" steps.
func moves(c app.Case, id uuid.UUID) string {
	var out []string
	for _, s := range c.Timeline {
		if s.ReferralID == id {
			out = append(out, s.Agency+":"+s.Move+"="+s.Status)
		}
	}
	return strings.Join(out, " ")
}

// Referrals walk their lives across nodes, as the chains of help do
// whatever the kinds of their nodes: one is received, accepted and
// forwarded to a third node (a new referral in the same case, whose parent
// it names), declined there with a reason code; another is started, held,
// resumed and completed with an outcome; another fails; another is
// cancelled by its sender. Each party sees every status; each node sees of the case only
// its own referrals, in and out; the timelines list every move once, in
// order.
func TestReferralLifecycleAcrossNodes(t *testing.T) {
	t.Parallel()
	n := nodetest.New(t)
	n.Start("clinic", plain(healthCheck), nil)
	n.Start("social", plain(familySupport), nil)
	n.Start("legal_aid", plain(legalHelp), nil)
	n.Start("school", plain(schoolTransfer), nil)

	r1 := n.Refer("clinic", "social", "family_support", "", "")
	n.Both(r1, "received")
	if got := n.Move("social", r1.ID, "accept", ``); got.Status != "accepted" {
		t.Fatalf("after accept social answers %q", got.Status)
	}
	n.Both(r1, "accepted")

	// social forwards the family to legal_aid, under its own consent.
	fwd := n.Move("social", r1.ID, "forward", n.Consented("social", `{"to_org":"legal_aid","service":"legal_help","note":"custody dispute"}`))
	if fwd.Status != "forwarded" || fwd.ForwardedTo == nil || fwd.ForwardedAgency != "legal_aid" {
		t.Fatalf("after forward: %+v", fwd)
	}
	n.Both(r1, "forwarded")
	nodetest.Eventually(t, 30*time.Second, func() error {
		r, err := n.Referral("clinic", r1.ID)
		if err != nil || r.ForwardedTo == nil || *r.ForwardedTo != *fwd.ForwardedTo || r.ForwardedAgency != "legal_aid" {
			return fmt.Errorf("the clinic does not see the forward: %+v %v", r, err)
		}
		return nil
	})
	var r2 app.Referral
	nodetest.Eventually(t, 30*time.Second, func() error {
		var err error
		if r2, err = n.Referral("legal_aid", *fwd.ForwardedTo); err != nil {
			return err
		}
		if r2.ParentID == nil || *r2.ParentID != r1.ID || r2.CaseID != r1.CaseID || r2.FromAgency != "social" || r2.Note != "custody dispute" || r2.Status != "received" {
			return fmt.Errorf("legal_aid's forwarded referral: %+v", r2)
		}
		return nil
	})
	n.Both(r2, "received")
	n.Move("legal_aid", r2.ID, "decline", `{"reason_code":"not_eligible","reason":"the family lives outside our area"}`)
	n.Both(r2, "declined")
	if r, _ := n.Referral("social", r2.ID); r.ReasonCode != "not_eligible" || r.Reason != "the family lives outside our area" {
		t.Errorf("social does not see why legal_aid declined: %+v", r)
	}

	// social refers on to the school in the same case: started, held,
	// resumed, completed.
	r3 := n.Refer("social", "school", "school_transfer", r1.CaseID.String(), "")
	n.Both(r3, "received")
	for _, step := range []struct{ move, body, status string }{
		{"accept", ``, "accepted"},
		{"start", ``, "in_progress"},
		{"hold", `{"reason":"the child is in hospital"}`, "on_hold"},
		{"resume", ``, "in_progress"},
		{"complete", `{"outcome":"the children go to school 42 from Monday"}`, "completed"},
	} {
		if got := n.Move("school", r3.ID, step.move, step.body); got.Status != step.status {
			t.Fatalf("after %s the school answers %q, want %q", step.move, got.Status, step.status)
		}
		n.Both(r3, step.status)
		if step.move == "hold" {
			if r, _ := n.Referral("social", r3.ID); r.Reason != "the child is in hospital" {
				t.Errorf("social does not see why the work was held: %+v", r)
			}
		}
	}
	if r, _ := n.Referral("social", r3.ID); r.Outcome != "the children go to school 42 from Monday" {
		t.Errorf("social does not see the outcome: %+v", r)
	}
	// The clinic asks the school too: it fails there, then the clinic's
	// next one is cancelled by the clinic.
	r4 := n.Refer("clinic", "school", "school_transfer", r1.CaseID.String(), "")
	n.Both(r4, "received")
	n.Move("school", r4.ID, "accept", ``)
	n.Move("school", r4.ID, "fail", `{"reason":"the family moved away"}`)
	n.Both(r4, "failed")
	r5 := n.Refer("clinic", "school", "school_transfer", r1.CaseID.String(), "")
	n.Both(r5, "received")
	n.Move("clinic", r5.ID, "cancel", `{"reason":"the family found a school themselves"}`)
	n.Both(r5, "cancelled")
	if r, _ := n.Referral("school", r5.ID); r.Reason != "the family found a school themselves" {
		t.Errorf("the school does not see why it was cancelled: %+v", r)
	}

	// Each node sees its own referrals of the case, in and out.
	for node, want := range map[string][]uuid.UUID{
		"clinic":    {r1.ID, r4.ID, r5.ID},
		"social":    {r1.ID, r2.ID, r3.ID},
		"legal_aid": {r2.ID},
		"school":    {r3.ID, r4.ID, r5.ID},
	} {
		c := n.Case(node, r1.CaseID)
		var got []uuid.UUID
		for _, r := range c.Referrals {
			got = append(got, r.ID)
		}
		if !sameIDs(got, want) {
			t.Errorf("%s sees the referrals %v of the case, want %v", node, got, want)
		}
	}
	// Every move once, in order, as both parties recorded it.
	for _, c := range []struct {
		r    app.Referral
		want string
	}{
		{r1, "clinic:request=requested social:receive=received social:accept=accepted social:forward=forwarded"},
		{r2, "social:request=requested legal_aid:receive=received legal_aid:decline=declined"},
		{r3, "social:request=requested school:receive=received school:accept=accepted school:start=in_progress school:hold=on_hold school:resume=in_progress school:complete=completed"},
		{r4, "clinic:request=requested school:receive=received school:accept=accepted school:fail=failed"},
		{r5, "clinic:request=requested school:receive=received clinic:cancel=cancelled"},
	} {
		for _, node := range []string{c.r.FromAgency, c.r.ToAgency} {
			if got := moves(n.Case(node, r1.CaseID), c.r.ID); got != c.want {
				t.Errorf("%s's timeline of %s's referral to %s:\n got %s\nwant %s", node, c.r.FromAgency, c.r.ToAgency, got, c.want)
			}
		}
	}
}

// A kind may decline a referral the moment it is received (a shelter with
// no free place): the core declines it, with the kind's reason, so the
// sender can look elsewhere; a referral in the same batch that the kind
// takes is received as usual.
func TestKindDeclinesAtOnceWithinABatch(t *testing.T) {
	t.Parallel()
	n := nodetest.New(t)
	n.Start("social", plain(familySupport), nil)
	shelter := n.Start("shelter", ledgerKind(shelterOffers...).declining("crisis_shelter"), nil)
	// The shelter is down while both referrals are sent, so that they
	// arrive together when it is back.
	// (Stopped as it starts, a node may say its directory watch was
	// canceled: directory.Watch reports the canceled context as an error.)
	if err := shelter.Stop(); err != nil && !errors.Is(err, context.Canceled) {
		t.Fatal(err)
	}
	full := n.Refer("social", "shelter", "crisis_shelter", "", "")
	free := n.Refer("social", "shelter", "legal_help", full.CaseID.String(), "")
	n.Restart("shelter", nil)
	n.Both(full, "declined")
	n.Both(free, "received")
	if got, _ := n.Referral("social", full.ID); got.ReasonCode != "no_capacity" || got.Reason != "no free place in crisis_shelter" {
		t.Errorf("social sees the decline as %+v", got)
	}
	if c := n.Case("social", full.CaseID); moves(c, full.ID) != "social:request=requested shelter:receive=received shelter:decline=declined" {
		t.Errorf("social's timeline of the declined referral: %s", moves(c, full.ID))
	}
	if h := heard(t, n, "shelter"); h[full.ID] != 1 || h[free.ID] != 1 || len(h) != 2 {
		t.Errorf("the shelter's kind was told of the referrals %v, want each once", h)
	}
}

func sameIDs(a, b []uuid.UUID) bool {
	if len(a) != len(b) {
		return false
	}
	seen := map[uuid.UUID]int{}
	for _, id := range a {
		seen[id]++
	}
	for _, id := range b {
		seen[id]--
	}
	for _, k := range seen {
		if k != 0 {
			return false
		}
	}
	return true
}

// Illegal moves, missing input, the wrong party, work a node does not
// record and unknown referrals get problems that say what to do, and
// change nothing.
func TestLifecycleRefusals(t *testing.T) {
	t.Parallel()
	n := nodetest.New(t)
	n.Start("clinic", plain(healthCheck), nil)
	n.Start("legal_aid", plain(legalHelp), nil)
	n.Start("social", plain(familySupport), nil)
	r := n.Refer("clinic", "legal_aid", "legal_help", "", "")
	n.Both(r, "received")
	for _, c := range []struct {
		node, move, body string
		status           int
		detail           string
	}{
		{"legal_aid", "complete", `{"outcome":"x"}`, 409, "allowed now"},
		{"legal_aid", "decline", `{"reason":"no time"}`, 422, "reason code"},
		{"legal_aid", "decline", `{"reason_code":"no_capacity"}`, 422, "reason"},
		{"clinic", "accept", ``, 403, "receiver"},
		{"legal_aid", "cancel", `{"reason":"x"}`, 403, "sender"},
		{"clinic", "cancel", ``, 422, "reason"},
		{"legal_aid", "forward", `{"service":"x"}`, 422, "to_org"},
		{"legal_aid", "forward", `{"to_org":"social","service":"family_support"}`, 422, "consent_id"},
		{"legal_aid", "forward", `{"to_org":"social","service":"brain_surgery"}`, 422, "does not offer"},
		{"legal_aid", "forward", `{"to_org":"police","service":"legal_help"}`, 422, "not an organization of the network"},
		{"legal_aid", "forward", `{"to_org":"legal_aid","service":"legal_help"}`, 422, "another node"},
		{"legal_aid", "accept", `{"work":{"screening":{"kind":"x","result":"normal"}}}`, 422, "does not record screening"},
		{"legal_aid", "hold", `{"reason":"x","work":{"screening":{"kind":"x","result":"normal"}}}`, 422, "accept"},
	} {
		status, body, h := n.Do(c.node, "POST", "/api/v1/referrals/"+r.ID.String()+"/"+c.move, c.body)
		if status != c.status || h.Get("Content-Type") != "application/problem+json" || !strings.Contains(strings.ToLower(body), c.detail) {
			t.Errorf("%s %s %s: %d %s, want %d mentioning %q", c.node, c.move, c.body, status, body, c.status, c.detail)
		}
	}
	if status, body, _ := n.Do("legal_aid", "POST", "/api/v1/referrals/"+uuid.NewString()+"/accept", ""); status != 404 {
		t.Errorf("unknown referral: %d %s", status, body)
	}
	// A node refers with none of the work records it does not make.
	status, body, h := n.Do("clinic", "POST", "/api/v1/referrals", n.Consented("clinic",
		`{"to_org":"legal_aid","service":"legal_help","note":"n","work":{"screening":{"kind":"x","result":"normal"}}}`))
	checkProblem(t, status, body, h, 422, "does not record screening")
	if sent, _ := n.App("clinic").Sent(t.Context(), "", 10); len(sent) != 1 {
		t.Errorf("the clinic sent %d referrals, want 1", len(sent))
	}
	n.Both(r, "received")
	for _, node := range []string{"clinic", "legal_aid"} {
		wantSteps(t, n, node, r, "request", "receive")
	}
	n.Move("clinic", r.ID, "cancel", `{"reason":"the family found help elsewhere"}`)
	n.Both(r, "cancelled")
	status, body, _ = n.Do("legal_aid", "POST", "/api/v1/referrals/"+r.ID.String()+"/accept", "")
	if status != 409 || !strings.Contains(body, "cancelled") {
		t.Errorf("accept after cancel: %d %s", status, body)
	}
}
