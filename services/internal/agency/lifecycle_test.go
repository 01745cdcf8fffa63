package agency_test

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/refbus/refbus/services/internal/agency"
)

// refer posts a referral and returns it.
func (n *network) refer(from, to, service, caseID string) agency.Referral {
	n.t.Helper()
	return n.referWith(from, to, service, caseID, "")
}

// referWith posts a referral with more fields (extra is a JSON fragment,
// such as `"work":{...}`) and returns it.
func (n *network) referWith(from, to, service, caseID, extra string) agency.Referral {
	n.t.Helper()
	body := fmt.Sprintf(`{"to_agency":%q,"service":%q,"note":"scenario"`, to, service)
	if extra != "" {
		body += "," + extra
	}
	if caseID != "" {
		body += fmt.Sprintf(`,"case_id":%q`, caseID)
	}
	status, res, _ := n.do(from, "POST", "/api/v1/referrals", n.consented(from, body+"}"))
	if status != 201 {
		n.t.Fatalf("%s refers to %s: %d %s", from, to, status, res)
	}
	return decode[agency.Referral](n.t, res)
}

// move makes a move over HTTP and fails the test unless it answers 200.
func (n *network) move(a string, id uuid.UUID, mv, body string) agency.Referral {
	n.t.Helper()
	status, res, _ := n.do(a, "POST", "/api/v1/referrals/"+id.String()+"/"+mv, body)
	if status != 200 {
		n.t.Fatalf("%s %s %s: %d %s", a, mv, id, status, res)
	}
	return decode[agency.Referral](n.t, res)
}

// both waits until both parties of a referral see it in status.
func (n *network) both(r agency.Referral, status string) {
	n.t.Helper()
	eventually(n.t, 10*time.Second, wantStatus(n, r.FromAgency, r.ID.String(), status))
	eventually(n.t, 10*time.Second, wantStatus(n, r.ToAgency, r.ID.String(), status))
}

func (n *network) caseOf(a string, id uuid.UUID) agency.Case {
	n.t.Helper()
	status, res, _ := n.do(a, "GET", "/api/v1/cases/"+id.String(), "")
	if status != 200 {
		n.t.Fatalf("%s case %s: %d %s", a, id, status, res)
	}
	return decode[agency.Case](n.t, res)
}

// Chain of help 1, early intervention: health refers the child to
// education, which assesses and refers the family on to social; health
// sees every status of its referral, and the case stays one case.
func TestScenarioEarlyIntervention(t *testing.T) {
	t.Parallel()
	n := newNetwork(t, "health", "education", "social")
	r1 := n.referWith("health", "education", "early_intervention_assessment", "",
		`"work":{"screening":{"kind":"development_2y","result":"concern","findings":"no two-word phrases"}}`)
	n.both(r1, "received")
	if r, _ := n.referralStatus("education", r1.ID.String()); r.Work == nil || r.Work.Screening == nil || r.Work.Screening.Result != "concern" {
		t.Fatalf("education did not get health's screening: %+v", r.Work)
	}
	for _, step := range []struct{ move, body, status string }{
		{"accept", ``, "accepted"},
		{"start", ``, "in_progress"},
	} {
		n.move("education", r1.ID, step.move, step.body)
		n.both(r1, step.status)
	}
	r2 := n.refer("education", "social", "disability_support", r1.CaseID.String())
	n.both(r2, "received")
	n.move("social", r2.ID, "accept", ``)
	n.move("social", r2.ID, "start", ``)
	n.move("social", r2.ID, "complete", `{"outcome":"disability benefit granted; social rehabilitation plan agreed",
		"work":{"benefit_decision":{"benefit":"child_disability_allowance","decision":"granted","monthly_kzt":52000}}}`)
	n.both(r2, "completed")
	if r, _ := n.referralStatus("education", r2.ID.String()); r.Work == nil || r.Work.BenefitDecision == nil || r.Work.BenefitDecision.MonthlyKZT != 52000 {
		t.Fatalf("education did not get social's benefit decision: %+v", r.Work)
	}
	today := time.Now().UTC()
	n.move("education", r1.ID, "complete", fmt.Sprintf(`{"outcome":"assessed; individual learning plan opened","work":{
		"assessment":{"conclusion":"speech and communication delay","needs_support":true},
		"learning_plan":{"programme":"early intervention","goals":"two-word phrases","starts_on":%q,"review_on":%q}}}`,
		today.Format(time.DateOnly), today.AddDate(0, 3, 0).Format(time.DateOnly)))
	n.both(r1, "completed")
	eventually(t, 10*time.Second, func() error {
		r, err := n.referralStatus("health", r1.ID.String())
		if err != nil || r.Work == nil || r.Work.Assessment == nil || r.Work.LearningPlan == nil || r.Work.Screening == nil || !r.Work.Assessment.NeedsSupport {
			return fmt.Errorf("health's referral lacks the work of both sides: %+v %v", r.Work, err)
		}
		return nil
	})

	hc := n.caseOf("health", r1.CaseID)
	if len(hc.Referrals) != 1 || hc.Referrals[0].Outcome != "assessed; individual learning plan opened" {
		t.Fatalf("health's view of the case: %+v", hc.Referrals)
	}
	var moves []string
	for _, s := range hc.Timeline {
		moves = append(moves, s.Agency+":"+s.Move+"="+s.Status)
	}
	want := "health:request=requested education:receive=received education:accept=accepted education:start=in_progress education:complete=completed"
	if got := strings.Join(moves, " "); got != want {
		t.Fatalf("health's timeline:\n got %s\nwant %s", got, want)
	}
	ec := n.caseOf("education", r1.CaseID)
	if len(ec.Referrals) != 2 {
		t.Fatalf("education sees %d referrals in the case, want 2 (in and out)", len(ec.Referrals))
	}
	// social never sees health's referral: only its own.
	if sc := n.caseOf("social", r1.CaseID); len(sc.Referrals) != 1 || sc.Referrals[0].ID != r2.ID {
		t.Fatalf("social's view of the case: %+v", sc.Referrals)
	}
}

// Chain of help 3, domestic violence: the school refers to social; social
// forwards to the shelter, which is full and declines at once; social
// sends the family to the other shelter, which takes them in and tells
// social, and only social, its address; the children's school transfer
// goes through education, and the mother's check through health, without
// the address.
func TestScenarioDomesticViolence(t *testing.T) {
	t.Parallel()
	n := newNetwork(t, "education", "social", "health")
	n.urls["ngo"] = newDB(t)
	n.start("ngo", oneBedShelters)
	// Another family has the only bed of the first shelter.
	other := n.refer("social", "ngo", "crisis_shelter", "")
	n.both(other, "received")
	n.move("ngo", other.ID, "accept", placement("1"))
	n.both(other, "accepted")

	r1 := n.refer("education", "social", "family_support", "")
	n.both(r1, "received")
	n.move("social", r1.ID, "accept", ``)
	n.both(r1, "accepted")
	fwd := n.move("social", r1.ID, "forward", n.consented("social", `{"to_agency":"ngo","service":"crisis_shelter","note":"mother and children need a safe place"}`))
	if fwd.Status != "forwarded" || fwd.ForwardedTo == nil || fwd.ForwardedAgency != "ngo" {
		t.Fatalf("after forward: %+v", fwd)
	}
	n.both(r1, "forwarded")
	eventually(t, 10*time.Second, func() error {
		r, err := n.referralStatus("education", r1.ID.String())
		if err != nil || r.ForwardedTo == nil || *r.ForwardedTo != *fwd.ForwardedTo || r.ForwardedAgency != "ngo" {
			return fmt.Errorf("education does not see the forward: %+v %v", r, err)
		}
		return nil
	})
	// The shelter is full: the forwarded referral is declined at once.
	var r2 agency.Referral
	eventually(t, 10*time.Second, func() error {
		var err error
		if r2, err = n.referralStatus("social", fwd.ForwardedTo.String()); err != nil {
			return err
		}
		if r2.ParentID == nil || *r2.ParentID != r1.ID || r2.CaseID != r1.CaseID || r2.Status != "declined" || r2.ReasonCode != "no_capacity" {
			return fmt.Errorf("social's forwarded referral: %+v", r2)
		}
		return nil
	})
	n.both(r2, "declined")

	// Social sends the family to the other shelter, in the same case.
	r3 := n.refer("social", "ngo", "crisis_shelter_nur", r1.CaseID.String())
	n.both(r3, "received")
	n.move("ngo", r3.ID, "accept", placement("N-1"))
	n.both(r3, "accepted")
	eventually(t, 10*time.Second, func() error {
		r, err := n.referralStatus("social", r3.ID.String())
		if err != nil || r.Work == nil || r.Work.Placement == nil || r.Work.Placement.Address != shelterAddress {
			return fmt.Errorf("social, which referred the family, does not have the shelter's address: %+v %v", r.Work, err)
		}
		return nil
	})
	// The children's school transfer and the mother's check, without it.
	school := n.refer("social", "education", "school_transfer", r1.CaseID.String())
	check := n.refer("ngo", "health", "medical_accompaniment", r1.CaseID.String())
	n.both(school, "received")
	n.both(check, "received")
	n.move("education", school.ID, "accept", ``)
	n.move("health", check.ID, "accept", ``)
	n.both(school, "accepted")
	n.both(check, "accepted")

	for _, a := range []string{"social", "education", "health"} {
		eventually(t, 10*time.Second, n.consumerIdle(a))
	}
	// The address reached social, so the checks below look in the right
	// places; it travelled sealed to social, in clear text nowhere on the
	// stream; and it is in no other agency's store, API or events.
	if !strings.Contains(n.storeText("social"), shelterAddress) || !n.eventsTo("social", `"sealed_address"`) {
		t.Fatal("the address did not reach social sealed: the checks below would prove nothing")
	}
	if n.eventsTo("", shelterAddress) {
		t.Error("the shelter's address is in clear text on the stream")
	}
	for _, a := range []string{"education", "health"} {
		if strings.Contains(n.storeText(a), shelterAddress) || strings.Contains(n.storeText(a), hexOf(shelterAddress)) {
			t.Errorf("the shelter's address is in %s's store", a)
		}
		for _, path := range []string{"/api/v1/inbox", "/api/v1/referrals", "/api/v1/cases/" + r1.CaseID.String(), "/api/v1/directory", "/api/v1/rejections"} {
			if _, body, _ := n.do(a, "GET", path, ""); strings.Contains(body, shelterAddress) {
				t.Errorf("the shelter's address is in %s's %s", a, path)
			}
		}
		if n.eventsTo(a, shelterAddress) {
			t.Errorf("the shelter's address is in an event addressed to %s", a)
		}
	}
}

// Chain of help 4, family in crisis: one referral is declined as not
// eligible, the other accepted and completed with an outcome.
func TestScenarioFamilyInCrisis(t *testing.T) {
	t.Parallel()
	n := newNetwork(t, "social", "ngo", "health")
	toNGO := n.refer("social", "ngo", "psychological_help", "")
	toHealth := n.refer("social", "health", "child_health_check", toNGO.CaseID.String())
	n.both(toNGO, "received")
	n.both(toHealth, "received")
	n.move("ngo", toNGO.ID, "decline", `{"reason_code":"not_eligible","reason":"family lives outside our area of service"}`)
	n.move("health", toHealth.ID, "accept", ``)
	n.move("health", toHealth.ID, "start", ``)
	n.move("health", toHealth.ID, "hold", `{"reason":"child in hospital"}`)
	n.move("health", toHealth.ID, "resume", ``)
	n.move("health", toHealth.ID, "complete", `{"outcome":"check done; nutrition support arranged",
		"work":{"screening":{"kind":"pediatric","result":"concern","findings":"underweight for age"}}}`)
	n.both(toNGO, "declined")
	n.both(toHealth, "completed")
	c := n.caseOf("social", toNGO.CaseID)
	if len(c.Referrals) != 2 {
		t.Fatalf("social's case has %d referrals, want 2", len(c.Referrals))
	}
	for _, r := range c.Referrals {
		if r.ID == toHealth.ID && (r.Work == nil || r.Work.Screening == nil || r.Work.Screening.Findings != "underweight for age") {
			t.Fatalf("social does not see health's screening: %+v", r.Work)
		}
	}
}

// Chain of help 2, crisis pregnancy: the maternity clinic refers to the
// NGO, which refers on to social and back to health; the sender cancels
// one, which the receiver sees.
func TestScenarioCrisisPregnancy(t *testing.T) {
	t.Parallel()
	n := newNetwork(t, "health", "ngo", "social")
	r1 := n.refer("health", "ngo", "mothers_home", "")
	n.both(r1, "received")
	n.move("ngo", r1.ID, "accept", placement("M-3"))
	n.move("ngo", r1.ID, "start", ``)
	toSocial := n.refer("ngo", "social", "benefits_and_housing", r1.CaseID.String())
	back := n.refer("ngo", "health", "medical_accompaniment", r1.CaseID.String())
	n.both(toSocial, "received")
	n.both(back, "received")
	n.move("social", toSocial.ID, "accept", ``)
	n.move("social", toSocial.ID, "start", ``)
	n.move("social", toSocial.ID, "complete", `{"outcome":"childcare allowance granted","work":{"benefit_decision":{"benefit":"childcare_allowance","decision":"granted","monthly_kzt":45000}}}`)
	n.move("ngo", back.ID, "cancel", `{"reason":"mother moved to another city"}`)
	n.both(toSocial, "completed")
	n.both(back, "cancelled")
	n.both(r1, "in_progress")
	// The maternity clinic that referred the mother knows where she stays;
	// social, which the ngo referred her to, does not.
	if r, _ := n.referralStatus("health", r1.ID.String()); r.Work == nil || r.Work.Placement == nil || r.Work.Placement.Address != shelterAddress || r.Work.Placement.Bed != "M-3" {
		t.Fatalf("health does not see the placement: %+v", r.Work)
	}
	if r, _ := n.referralStatus("ngo", toSocial.ID.String()); r.Work == nil || r.Work.BenefitDecision == nil || r.Work.BenefitDecision.Decision != "granted" {
		t.Fatalf("ngo does not see social's benefit decision: %+v", r.Work)
	}
	if strings.Contains(n.storeText("social"), shelterAddress) {
		t.Fatal("the address of Mother's Home reached social")
	}
	// health holds both sides of the case: its referral out and one in.
	if c := n.caseOf("health", r1.CaseID); len(c.Referrals) != 2 {
		t.Fatalf("health's case has %d referrals, want 2", len(c.Referrals))
	}
}

// Illegal moves, missing input, the wrong party and unknown referrals get
// problems that say what to do, and change nothing.
func TestLifecycleRefusals(t *testing.T) {
	t.Parallel()
	n := newNetwork(t, "health", "ngo", "social")
	r := n.refer("health", "ngo", "legal_help", "")
	n.both(r, "received")
	for _, c := range []struct {
		agency, move, body string
		status             int
		detail             string
	}{
		{"ngo", "complete", `{"outcome":"x"}`, 409, "allowed now"},
		{"ngo", "decline", `{"reason":"no bed"}`, 422, "reason code"},
		{"ngo", "decline", `{"reason_code":"no_capacity"}`, 422, "reason"},
		{"health", "accept", ``, 403, "receiver"},
		{"ngo", "cancel", `{"reason":"x"}`, 403, "sender"},
		{"health", "cancel", ``, 422, "reason"},
		{"ngo", "forward", `{"service":"x"}`, 422, "agency"},
		{"ngo", "forward", `{"to_agency":"social","service":"family_support"}`, 422, "consent_id"},
		{"ngo", "forward", `{"to_agency":"social","service":"brain_surgery"}`, 422, "does not offer"},
	} {
		status, body, h := n.do(c.agency, "POST", "/api/v1/referrals/"+r.ID.String()+"/"+c.move, c.body)
		if status != c.status || h.Get("Content-Type") != "application/problem+json" || !strings.Contains(strings.ToLower(body), c.detail) {
			t.Errorf("%s %s %s: %d %s, want %d mentioning %q", c.agency, c.move, c.body, status, body, c.status, c.detail)
		}
	}
	if status, body, _ := n.do("ngo", "POST", "/api/v1/referrals/"+uuid.NewString()+"/accept", ""); status != 404 {
		t.Errorf("unknown referral: %d %s", status, body)
	}
	n.both(r, "received")
	n.move("health", r.ID, "cancel", `{"reason":"family found help elsewhere"}`)
	n.both(r, "cancelled")
	status, body, _ := n.do("ngo", "POST", "/api/v1/referrals/"+r.ID.String()+"/accept", "")
	if status != 409 || !strings.Contains(body, "cancelled") {
		t.Errorf("accept after cancel: %d %s", status, body)
	}
}
