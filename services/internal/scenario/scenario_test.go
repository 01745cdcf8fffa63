package scenario_test

import (
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/refbus/refbus/pkg/pgtest"
	"github.com/refbus/refbus/services/internal/core"
	"github.com/refbus/refbus/services/internal/core/app"
	"github.com/refbus/refbus/services/internal/core/directory"
	"github.com/refbus/refbus/services/internal/core/nodetest"
	"github.com/refbus/refbus/services/kinds"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

// demoNode is a node of a demo network of DOMAIN.md: its name, its kind,
// and the organizations it hosts, which offer services of its kind's.
type demoNode struct {
	name, kind string
	orgs       []directory.Organization
}

// offers are the services of kind named names, as the kind offers them
// by default, each changed by the options that follow it.
func offers(kindName string, names ...string) []directory.Offer {
	var out []directory.Offer
	for _, name := range names {
		for _, o := range kinds.New(kindName).Offers() {
			if o.Name == name {
				out = append(out, o)
			}
		}
	}
	return out
}

// shelter is kind ngo's crisis_shelter, as a shelter of beds beds in area.
func shelter(title, area string, beds int) directory.Offer {
	o := offers("ngo", "crisis_shelter")[0]
	o.Title, o.Area, o.Beds = title, area, beds
	return o
}

// kz is the Kazakh demo network: the coordinator is social.
var kz = []demoNode{
	{"health", "health", []directory.Organization{
		{ID: "kz-almaty-polyclinic-5", Name: "Almaty polyclinic No. 5", Area: "Almaty", Services: offers("health", "child_health_check", "medical_rehabilitation")},
		{ID: "kz-almaty-perinatal", Name: "Almaty city perinatal centre", Area: "Almaty", Services: offers("health", "medical_accompaniment")},
	}},
	{"education", "education", []directory.Organization{
		{ID: "kz-almaty-pmpk", Name: "PMPK and early-intervention centre, Almaty", Area: "Almaty", Services: offers("education", "early_intervention_assessment")},
		{ID: "kz-almaty-school-12", Name: "School No. 12, Almaty", Area: "Almaty", Services: offers("education", "school_transfer")},
	}},
	{"social", "social", []directory.Organization{
		{ID: "kz-almaty-fsc-almaly", Name: "Family support centre, Almaly district", Area: "Almaty", Services: offers("social", "family_support", "disability_support", "benefits_and_housing")},
		{ID: "kz-almaty-fsc-auezov", Name: "Family support centre, Auezov district", Area: "Almaty", Services: offers("social", "family_support", "disability_support", "benefits_and_housing")},
	}},
	{"ngo", "ngo", []directory.Organization{
		{ID: "kz-zhan-saya", Name: "Zhan-Saya crisis centre", Area: "Almaty", Services: append([]directory.Offer{shelter("Zhan-Saya: safe stay up to 6 months", "Almaty", 52)}, offers("ngo", "psychological_help", "legal_help")...)},
	}},
	{"ngo_nur", "ngo", []directory.Organization{
		{ID: "kz-nur", Name: "Nur crisis centre", Area: "Almaty region", Services: []directory.Offer{shelter("Nur: safe stay up to 6 months", "Almaty region", 12)}},
	}},
}

// kg is the Kyrgyz demo network: the coordinator is social, the ministry.
var kg = []demoNode{
	{"health", "health", []directory.Organization{
		{ID: "kg-bishkek-fmc-1", Name: "Bishkek family medicine centre No. 1", Area: "Bishkek", Services: offers("health", "child_health_check", "medical_accompaniment")},
	}},
	{"social", "social", []directory.Organization{
		{ID: "kg-mlssm", Name: "Ministry of Labour, Social Security and Migration, Bishkek", Area: "Bishkek", Services: offers("social", "benefits_and_housing", "housing")},
	}},
	{"ngo", "ngo", []directory.Organization{
		{ID: "kg-ene-uyu", Name: `Mother's Home "Ene üyü"`, Area: "Bishkek", Services: offers("ngo", "mothers_home", "psychological_help", "legal_help")},
	}},
	{"ngo_league", "ngo", []directory.Organization{
		{ID: "kg-child-rights-league", Name: "League of Child Rights Defenders", Area: "Bishkek", Services: offers("ngo", "legal_help")},
	}},
}

// network starts the nodes of a demo network (nil: a node of each of the
// four kinds, named after it, hosting one organization named after it),
// social coordinating (it sees every overdue referral). tune changes the
// config of the node it names, and its "" entry every node's first.
func network(t *testing.T, demo []demoNode, tune map[string]func(*core.Config)) *nodetest.Network {
	t.Helper()
	if demo == nil {
		for _, k := range kinds.Names {
			demo = append(demo, demoNode{name: k, kind: k})
		}
	}
	n := nodetest.New(t)
	for _, nd := range demo {
		n.Start(nd.name, kinds.New(nd.kind), func(c *core.Config) {
			c.Coordinator = "social"
			// Each node its own copy: a test may change it.
			for _, o := range nd.orgs {
				o.Services = slices.Clone(o.Services)
				c.Organizations = append(c.Organizations, o)
			}
			for _, name := range []string{"", nd.name} {
				if f := tune[name]; f != nil {
					f(c)
				}
			}
		})
	}
	return n
}

// oneBed leaves a node's shelters one bed each.
func oneBed(c *core.Config) {
	for _, o := range c.Organizations {
		for i := range o.Services {
			if o.Services[i].Beds > 0 {
				o.Services[i].Beds = 1
			}
		}
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

// Chain of help 1, early intervention: the polyclinic (health) refers the
// child to the PMPK (education), which assesses and refers the family on
// to a family support centre (social); health sees every status of its
// referral, and the case stays one case.
func TestScenarioEarlyIntervention(t *testing.T) {
	t.Parallel()
	n := network(t, kz, nil)
	r1 := n.Refer("health", "kz-almaty-pmpk", "early_intervention_assessment", "",
		`"work":{"screening":{"kind":"development_2y","result":"concern","findings":"no two-word phrases"}}`)
	if r1.FromOrg != "kz-almaty-polyclinic-5" || r1.ToOrg != "kz-almaty-pmpk" || r1.ToAgency != "education" || r1.ToOrgName != "PMPK and early-intervention centre, Almaty" {
		t.Fatalf("the referral goes from the node's first organization to the PMPK at education: %+v", r1)
	}
	n.Both(r1, "received")
	if r, _ := n.Referral("education", r1.ID); r.FromOrg != "kz-almaty-polyclinic-5" || r.ToOrg != "kz-almaty-pmpk" || r.FromOrgName != "Almaty polyclinic No. 5" {
		t.Fatalf("education files the referral under the PMPK, from the polyclinic: %+v", r)
	}
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
	r2 := n.Refer("education", "kz-almaty-fsc-almaly", "disability_support", r1.CaseID.String(), "")
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

// Chain of help 2, crisis pregnancy, on the Kyrgyz network: the family
// medicine centre refers to the Mother's Home (ngo), which refers on to
// the ministry (social) and back to health; the sender cancels one, which
// the receiver sees.
func TestScenarioCrisisPregnancy(t *testing.T) {
	t.Parallel()
	n := network(t, kg, nil)
	r1 := n.Refer("health", "kg-ene-uyu", "mothers_home", "", "")
	n.Both(r1, "received")
	n.Move("ngo", r1.ID, "accept", nodetest.Placement("M-3"))
	n.Move("ngo", r1.ID, "start", ``)
	toSocial := n.Refer("ngo", "kg-mlssm", "benefits_and_housing", r1.CaseID.String(), "")
	back := n.Refer("ngo", "kg-bishkek-fmc-1", "medical_accompaniment", r1.CaseID.String(), "")
	n.Both(toSocial, "received")
	n.Both(back, "received")
	n.Move("social", toSocial.ID, "accept", ``)
	n.Move("social", toSocial.ID, "start", ``)
	n.Move("social", toSocial.ID, "complete", `{"outcome":"childcare allowance granted","work":{"benefit_decision":{"benefit":"childcare_allowance","decision":"granted","monthly_kzt":45000}}}`)
	n.Move("ngo", back.ID, "cancel", `{"reason":"mother moved to another city"}`)
	n.Both(toSocial, "completed")
	n.Both(back, "cancelled")
	n.Both(r1, "in_progress")
	// The maternity clinic that referred the mother knows that she is
	// placed, not where; social, which the ngo referred her to, neither.
	if r, _ := n.Referral("health", r1.ID); r.Work == nil || r.Work.Placement == nil || r.Work.Placement.Address != "" || r.Work.Placement.Bed != "M-3" {
		t.Fatalf("health does not see the placement, or sees its address: %+v", r.Work)
	}
	if r, _ := n.Referral("ngo", toSocial.ID); r.Work == nil || r.Work.BenefitDecision == nil || r.Work.BenefitDecision.Decision != "granted" {
		t.Fatalf("ngo does not see social's benefit decision: %+v", r.Work)
	}
	n.WantSecretOnlyAt(nodetest.ShelterAddress, []string{"ngo"}, []string{"health", "social", "ngo_league"}, r1.CaseID)
	// health holds both sides of the case: its referral out and one in.
	if c := n.Case("health", r1.CaseID); len(c.Referrals) != 2 {
		t.Fatalf("health's case has %d referrals, want 2", len(c.Referrals))
	}
	// The mother's bed is taken while she stays.
	n.WantFreeBeds("social", "kg-ene-uyu", "mothers_home", 19)
}

// Chain of help 3, domestic violence: the school refers to a family
// support centre (social); the centre forwards to the Zhan-Saya shelter
// (ngo), which is full and declines at once; the centre sends the family
// to the Nur shelter (another ngo node), which takes them in and tells the
// centre, and only it, its address; the children's school transfer goes
// through education, and the mother's check through health, without the
// address.
func TestScenarioDomesticViolence(t *testing.T) {
	t.Parallel()
	n := network(t, kz, map[string]func(*core.Config){"ngo": oneBed, "ngo_nur": oneBed})
	// Another family has the only bed of the first shelter, at its own
	// address.
	other := n.Refer("social", "kz-zhan-saya", "crisis_shelter", "", "")
	n.Both(other, "received")
	n.Move("ngo", other.ID, "accept", fmt.Sprintf(`{"work":{"placement":{"bed":"1","address":"Almaty, Zhan-Saya","ends_on":%q}}}`, nodetest.Date(3)))
	n.Both(other, "accepted")

	r1 := n.Refer("education", "kz-almaty-fsc-almaly", "family_support", "", `"from_org":"kz-almaty-school-12"`)
	n.Both(r1, "received")
	n.Move("social", r1.ID, "accept", ``)
	n.Both(r1, "accepted")
	fwd := n.Move("social", r1.ID, "forward", n.Consented("social", `{"to_org":"kz-zhan-saya","service":"crisis_shelter","note":"mother and children need a safe place"}`))
	if fwd.Status != "forwarded" || fwd.ForwardedTo == nil || fwd.ForwardedAgency != "ngo" || fwd.ForwardedOrg != "kz-zhan-saya" {
		t.Fatalf("after forward: %+v", fwd)
	}
	n.Both(r1, "forwarded")
	nodetest.Eventually(t, 10*time.Second, func() error {
		r, err := n.Referral("education", r1.ID)
		if err != nil || r.ForwardedTo == nil || *r.ForwardedTo != *fwd.ForwardedTo || r.ForwardedAgency != "ngo" || r.ForwardedOrg != "kz-zhan-saya" || r.FromOrg != "kz-almaty-school-12" {
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
		if r2.ParentID == nil || *r2.ParentID != r1.ID || r2.CaseID != r1.CaseID || r2.Status != "declined" || r2.ReasonCode != "no_capacity" ||
			r2.FromOrg != "kz-almaty-fsc-almaly" || r2.ToOrg != "kz-zhan-saya" {
			return fmt.Errorf("social's forwarded referral: %+v", r2)
		}
		return nil
	})
	n.Both(r2, "declined")

	// Social sends the family to the other shelter, in the same case.
	r3 := n.Refer("social", "kz-nur", "crisis_shelter", r1.CaseID.String(), "")
	n.Both(r3, "received")
	n.Move("ngo_nur", r3.ID, "accept", nodetest.Placement("N-1"))
	n.Both(r3, "accepted")
	nodetest.Eventually(t, 10*time.Second, func() error {
		r, err := n.Referral("social", r3.ID)
		if err != nil || r.Work == nil || r.Work.Placement == nil || r.Work.Placement.Address != "" || r.Work.Placement.EndsOn == "" {
			return fmt.Errorf("social, which referred the family, does not learn that it is placed and until when, or learns where: %+v %v", r.Work, err)
		}
		return nil
	})
	n.WantFreeBeds("education", "kz-nur", "crisis_shelter", 0)
	n.WantFreeBeds("education", "kz-zhan-saya", "crisis_shelter", 0)
	// The children's school transfer and the mother's check, without it.
	school := n.Refer("social", "kz-almaty-school-12", "school_transfer", r1.CaseID.String(), "")
	check := n.Refer("ngo_nur", "kz-almaty-perinatal", "medical_accompaniment", r1.CaseID.String(), "")
	n.Both(school, "received")
	n.Both(check, "received")
	n.Move("education", school.ID, "accept", ``)
	n.Move("health", check.ID, "accept", ``)
	n.Both(school, "accepted")
	n.Both(check, "accepted")

	// The address stays at the shelter: it is nowhere on the stream, and
	// in no other node's store, API or events, not social's either.
	n.WantSecretOnlyAt(nodetest.ShelterAddress, []string{"ngo_nur"}, []string{"social", "education", "health", "ngo"}, r1.CaseID)
	// One case from the school's first referral to the shelter.
	if c := n.Case("social", r1.CaseID); len(c.Referrals) != 4 {
		t.Fatalf("social's case has %d referrals, want 4 (from the school, to both shelters, to the school): %+v", len(c.Referrals), c.Referrals)
	}
}

// Chain of help 4, family in crisis: one referral is declined as not
// eligible, the other accepted and completed with an outcome.
func TestScenarioFamilyInCrisis(t *testing.T) {
	t.Parallel()
	n := network(t, kz, nil)
	toNGO := n.Refer("social", "kz-zhan-saya", "psychological_help", "", "")
	toHealth := n.Refer("social", "kz-almaty-polyclinic-5", "child_health_check", toNGO.CaseID.String(), "")
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
