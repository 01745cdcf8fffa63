package scenario_test

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/refbus/refbus/pkg/pgtest"
	"github.com/refbus/refbus/services/education"
	"github.com/refbus/refbus/services/health"
	"github.com/refbus/refbus/services/internal/core"
	"github.com/refbus/refbus/services/internal/core/app"
	"github.com/refbus/refbus/services/internal/core/directory"
	"github.com/refbus/refbus/services/internal/core/kind"
	"github.com/refbus/refbus/services/internal/core/nodetest"
	"github.com/refbus/refbus/services/ngo"
	"github.com/refbus/refbus/services/social"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

// network starts a node of each of the four kinds, named after its kind;
// social coordinates (it sees every overdue referral), as in the demo
// network. tune changes the config of the node it names, and its ""
// entry every node's first.
func network(t *testing.T, tune map[string]func(*core.Config)) *nodetest.Network {
	t.Helper()
	n := nodetest.New(t)
	for _, k := range []kind.Kind{health.New(), education.New(), social.New(), ngo.New()} {
		n.Start(k.Name(), k, func(c *core.Config) {
			c.Coordinator = "social"
			for _, name := range []string{"", k.Name()} {
				if f := tune[name]; f != nil {
					f(c)
				}
			}
		})
	}
	return n
}

// oneBedShelters gives the NGO two shelters of one bed each.
func oneBedShelters(c *core.Config) {
	c.Offers = []directory.Offer{
		{Name: "crisis_shelter", Title: "Zhan-Saya", Eligibility: "women and children", Languages: []string{"kk", "ru"}, Area: "Almaty", Beds: 1},
		{Name: "crisis_shelter_nur", Title: "Nur", Eligibility: "women and children", Languages: []string{"ru"}, Area: "Almaty region", Beds: 1},
		{Name: "legal_help", Title: "Legal consultation", Eligibility: "families", Languages: []string{"kk"}, Area: "Almaty"},
	}
}

// timeline is a node's timeline of a case as agency:move=status steps.
func timeline(c app.Case) string {
	var steps []string
	for _, s := range c.Timeline {
		steps = append(steps, s.Agency+":"+s.Move+"="+s.Status)
	}
	return strings.Join(steps, " ")
}

// Chain of help 1, early intervention: health refers the child to
// education, which assesses and refers the family on to social; health
// sees every status of its referral, and the case stays one case.
func TestScenarioEarlyIntervention(t *testing.T) {
	t.Parallel()
	n := network(t, nil)
	r1 := n.Refer("health", "education", "early_intervention_assessment", "",
		`"work":{"screening":{"kind":"development_2y","result":"concern","findings":"no two-word phrases"}}`)
	n.Both(r1, "received")
	if r, _ := n.Referral("education", r1.ID); r.Work == nil || r.Work.Screening == nil || r.Work.Screening.Result != "concern" {
		t.Fatalf("education did not get health's screening: %+v", r.Work)
	}
	for _, step := range []struct{ move, body, status string }{
		{"accept", ``, "accepted"},
		{"start", ``, "in_progress"},
	} {
		n.Move("education", r1.ID, step.move, step.body)
		n.Both(r1, step.status)
	}
	r2 := n.Refer("education", "social", "disability_support", r1.CaseID.String(), "")
	n.Both(r2, "received")
	n.Move("social", r2.ID, "accept", ``)
	n.Move("social", r2.ID, "start", ``)
	n.Move("social", r2.ID, "complete", `{"outcome":"disability benefit granted; social rehabilitation plan agreed",
		"work":{"benefit_decision":{"benefit":"child_disability_allowance","decision":"granted","monthly_kzt":52000}}}`)
	n.Both(r2, "completed")
	if r, _ := n.Referral("education", r2.ID); r.Work == nil || r.Work.BenefitDecision == nil || r.Work.BenefitDecision.MonthlyKZT != 52000 {
		t.Fatalf("education did not get social's benefit decision: %+v", r.Work)
	}
	n.Move("education", r1.ID, "complete", fmt.Sprintf(`{"outcome":"assessed; individual learning plan opened","work":{
		"assessment":{"conclusion":"speech and communication delay","needs_support":true},
		"learning_plan":{"programme":"early intervention","goals":"two-word phrases","starts_on":%q,"review_on":%q}}}`,
		nodetest.Date(0), nodetest.Date(3)))
	n.Both(r1, "completed")
	nodetest.Eventually(t, 10*time.Second, func() error {
		r, err := n.Referral("health", r1.ID)
		if err != nil || r.Work == nil || r.Work.Assessment == nil || r.Work.LearningPlan == nil || r.Work.Screening == nil || !r.Work.Assessment.NeedsSupport {
			return fmt.Errorf("health's referral lacks the work of both sides: %+v %v", r.Work, err)
		}
		return nil
	})

	hc := n.Case("health", r1.CaseID)
	if len(hc.Referrals) != 1 || hc.Referrals[0].Outcome != "assessed; individual learning plan opened" {
		t.Fatalf("health's view of the case: %+v", hc.Referrals)
	}
	want := "health:request=requested education:receive=received education:accept=accepted education:start=in_progress education:complete=completed"
	if got := timeline(hc); got != want {
		t.Fatalf("health's timeline:\n got %s\nwant %s", got, want)
	}
	ec := n.Case("education", r1.CaseID)
	if len(ec.Referrals) != 2 {
		t.Fatalf("education sees %d referrals in the case, want 2 (in and out)", len(ec.Referrals))
	}
	// social never sees health's referral: only its own.
	if sc := n.Case("social", r1.CaseID); len(sc.Referrals) != 1 || sc.Referrals[0].ID != r2.ID {
		t.Fatalf("social's view of the case: %+v", sc.Referrals)
	}
	// Each node kept its own work in its own tables.
	n.WantRows("health", "health.screening", 1, r1.ID.String(), "no two-word phrases")
	n.WantRows("education", "education.assessment", 1, r1.ID.String(), "speech and communication delay")
	n.WantRows("education", "education.learning_plan", 1, r1.ID.String(), "two-word phrases")
	n.WantRows("social", "social.benefit_decision", 1, r2.ID.String(), "child_disability_allowance")
}

// Chain of help 2, crisis pregnancy: the maternity clinic refers to the
// NGO, which refers on to social and back to health; the sender cancels
// one, which the receiver sees.
func TestScenarioCrisisPregnancy(t *testing.T) {
	t.Parallel()
	n := network(t, nil)
	r1 := n.Refer("health", "ngo", "mothers_home", "", "")
	n.Both(r1, "received")
	n.Move("ngo", r1.ID, "accept", nodetest.Placement("M-3"))
	n.Move("ngo", r1.ID, "start", ``)
	toSocial := n.Refer("ngo", "social", "benefits_and_housing", r1.CaseID.String(), "")
	back := n.Refer("ngo", "health", "medical_accompaniment", r1.CaseID.String(), "")
	n.Both(toSocial, "received")
	n.Both(back, "received")
	n.Move("social", toSocial.ID, "accept", ``)
	n.Move("social", toSocial.ID, "start", ``)
	n.Move("social", toSocial.ID, "complete", `{"outcome":"childcare allowance granted","work":{"benefit_decision":{"benefit":"childcare_allowance","decision":"granted","monthly_kzt":45000}}}`)
	n.Move("ngo", back.ID, "cancel", `{"reason":"mother moved to another city"}`)
	n.Both(toSocial, "completed")
	n.Both(back, "cancelled")
	n.Both(r1, "in_progress")
	// The maternity clinic that referred the mother knows where she stays;
	// social, which the ngo referred her to, does not.
	if r, _ := n.Referral("health", r1.ID); r.Work == nil || r.Work.Placement == nil || r.Work.Placement.Address != nodetest.ShelterAddress || r.Work.Placement.Bed != "M-3" {
		t.Fatalf("health does not see the placement: %+v", r.Work)
	}
	if r, _ := n.Referral("ngo", toSocial.ID); r.Work == nil || r.Work.BenefitDecision == nil || r.Work.BenefitDecision.Decision != "granted" {
		t.Fatalf("ngo does not see social's benefit decision: %+v", r.Work)
	}
	n.WantSecretOnlyAt(nodetest.ShelterAddress, []string{"ngo", "health"}, []string{"social", "education"}, r1.CaseID)
	// health holds both sides of the case: its referral out and one in.
	if c := n.Case("health", r1.CaseID); len(c.Referrals) != 2 {
		t.Fatalf("health's case has %d referrals, want 2", len(c.Referrals))
	}
	// The mother's bed is taken while she stays.
	n.WantFreeBeds("social", "ngo", "mothers_home", 19)
}

// Chain of help 3, domestic violence: the school refers to social; social
// forwards to the shelter, which is full and declines at once; social
// sends the family to the other shelter, which takes them in and tells
// social, and only social, its address; the children's school transfer
// goes through education, and the mother's check through health, without
// the address.
func TestScenarioDomesticViolence(t *testing.T) {
	t.Parallel()
	n := network(t, map[string]func(*core.Config){"ngo": oneBedShelters})
	// Another family has the only bed of the first shelter.
	other := n.Refer("social", "ngo", "crisis_shelter", "", "")
	n.Both(other, "received")
	n.Move("ngo", other.ID, "accept", nodetest.Placement("1"))
	n.Both(other, "accepted")

	r1 := n.Refer("education", "social", "family_support", "", "")
	n.Both(r1, "received")
	n.Move("social", r1.ID, "accept", ``)
	n.Both(r1, "accepted")
	fwd := n.Move("social", r1.ID, "forward", n.Consented("social", `{"to_agency":"ngo","service":"crisis_shelter","note":"mother and children need a safe place"}`))
	if fwd.Status != "forwarded" || fwd.ForwardedTo == nil || fwd.ForwardedAgency != "ngo" {
		t.Fatalf("after forward: %+v", fwd)
	}
	n.Both(r1, "forwarded")
	nodetest.Eventually(t, 10*time.Second, func() error {
		r, err := n.Referral("education", r1.ID)
		if err != nil || r.ForwardedTo == nil || *r.ForwardedTo != *fwd.ForwardedTo || r.ForwardedAgency != "ngo" {
			return fmt.Errorf("education does not see the forward: %+v %v", r, err)
		}
		return nil
	})
	// The shelter is full: the forwarded referral is declined at once.
	var r2 app.Referral
	nodetest.Eventually(t, 10*time.Second, func() error {
		var err error
		if r2, err = n.Referral("social", *fwd.ForwardedTo); err != nil {
			return err
		}
		if r2.ParentID == nil || *r2.ParentID != r1.ID || r2.CaseID != r1.CaseID || r2.Status != "declined" || r2.ReasonCode != "no_capacity" {
			return fmt.Errorf("social's forwarded referral: %+v", r2)
		}
		return nil
	})
	n.Both(r2, "declined")

	// Social sends the family to the other shelter, in the same case.
	r3 := n.Refer("social", "ngo", "crisis_shelter_nur", r1.CaseID.String(), "")
	n.Both(r3, "received")
	n.Move("ngo", r3.ID, "accept", nodetest.Placement("N-1"))
	n.Both(r3, "accepted")
	nodetest.Eventually(t, 10*time.Second, func() error {
		r, err := n.Referral("social", r3.ID)
		if err != nil || r.Work == nil || r.Work.Placement == nil || r.Work.Placement.Address != nodetest.ShelterAddress {
			return fmt.Errorf("social, which referred the family, does not have the shelter's address: %+v %v", r.Work, err)
		}
		return nil
	})
	n.WantFreeBeds("education", "ngo", "crisis_shelter_nur", 0)
	// The children's school transfer and the mother's check, without it.
	school := n.Refer("social", "education", "school_transfer", r1.CaseID.String(), "")
	check := n.Refer("ngo", "health", "medical_accompaniment", r1.CaseID.String(), "")
	n.Both(school, "received")
	n.Both(check, "received")
	n.Move("education", school.ID, "accept", ``)
	n.Move("health", check.ID, "accept", ``)
	n.Both(school, "accepted")
	n.Both(check, "accepted")

	// The address reached social sealed to it; it is in clear text nowhere
	// on the stream, and in no other node's store, API or events.
	nodetest.Eventually(t, 10*time.Second, n.ConsumerIdle("social"))
	if !n.EventsTo("social", `"sealed_address"`) {
		t.Fatal("the address did not reach social sealed: the checks below would prove nothing")
	}
	n.WantSecretOnlyAt(nodetest.ShelterAddress, []string{"ngo", "social"}, []string{"education", "health"}, r1.CaseID)
	// One case from the school's first referral to the shelter.
	if c := n.Case("social", r1.CaseID); len(c.Referrals) != 4 {
		t.Fatalf("social's case has %d referrals, want 4 (from the school, to both shelters, to the school): %+v", len(c.Referrals), c.Referrals)
	}
}

// Chain of help 4, family in crisis: one referral is declined as not
// eligible, the other accepted and completed with an outcome.
func TestScenarioFamilyInCrisis(t *testing.T) {
	t.Parallel()
	n := network(t, nil)
	toNGO := n.Refer("social", "ngo", "psychological_help", "", "")
	toHealth := n.Refer("social", "health", "child_health_check", toNGO.CaseID.String(), "")
	n.Both(toNGO, "received")
	n.Both(toHealth, "received")
	n.Move("ngo", toNGO.ID, "decline", `{"reason_code":"not_eligible","reason":"family lives outside our area of service"}`)
	n.Move("health", toHealth.ID, "accept", ``)
	n.Move("health", toHealth.ID, "start", ``)
	n.Move("health", toHealth.ID, "hold", `{"reason":"child in hospital"}`)
	n.Move("health", toHealth.ID, "resume", ``)
	n.Move("health", toHealth.ID, "complete", `{"outcome":"check done; nutrition support arranged",
		"work":{"screening":{"kind":"pediatric","result":"concern","findings":"underweight for age"}}}`)
	n.Both(toNGO, "declined")
	n.Both(toHealth, "completed")
	c := n.Case("social", toNGO.CaseID)
	if len(c.Referrals) != 2 {
		t.Fatalf("social's case has %d referrals, want 2", len(c.Referrals))
	}
	for _, r := range c.Referrals {
		switch r.ID {
		case toHealth.ID:
			if r.Outcome != "check done; nutrition support arranged" || r.Work == nil || r.Work.Screening == nil || r.Work.Screening.Findings != "underweight for age" {
				t.Fatalf("social does not see health's outcome and screening: %+v", r)
			}
		case toNGO.ID:
			if r.ReasonCode != "not_eligible" || r.Reason != "family lives outside our area of service" {
				t.Fatalf("social does not see why the ngo declined: %+v", r)
			}
		}
	}
	want := "health:accept=accepted health:start=in_progress health:hold=on_hold health:resume=in_progress health:complete=completed"
	if got := timeline(n.Case("health", toNGO.CaseID)); !strings.HasSuffix(got, want) {
		t.Fatalf("health's timeline:\n got %s\nwant it to end with %s", got, want)
	}
}
