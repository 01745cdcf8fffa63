package main

import (
	"context"
	"fmt"
	"time"

	"github.com/google/uuid"

	"github.com/refbus/refbus/pkg/referral"
	"github.com/refbus/refbus/schemas"
	"github.com/refbus/refbus/services/internal/core/app"
)

// demo walks the four chains of help of DOMAIN.md part of the way, so a new
// user finds referrals in every state to click through.
type demo struct {
	svcs map[string]*app.App
}

// loadDemo runs once: when the Kazakh health node has sent nothing yet.
// The chains go between organizations; d.at finds each one's node.
func loadDemo(ctx context.Context, svcs map[string]*app.App) error {
	sent, err := svcs["kz-health"].Sent(ctx, "", 1)
	if err != nil || len(sent) > 0 {
		return err
	}
	d := demo{svcs: svcs}
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	today := time.Now().UTC()

	// 1. Early intervention (Kazakhstan): the polyclinic -> the PMPK
	// (assessed, learning plan) -> a family support centre.
	r1, err := d.refer(ctx, "kz-polyclinic-5", "kz-pmpk-almaty", "early_intervention_assessment", "2-year check: speech and social delay; the family agrees to an assessment.", uuid.Nil,
		&schemas.Work{Screening: &schemas.Screening{Kind: "development_2y", Result: "concern", Findings: "no two-word phrases; little eye contact"}})
	if err != nil {
		return err
	}
	if err := d.moves(ctx, "kz-pmpk-almaty", r1, referral.Accept, referral.Start); err != nil {
		return err
	}
	if _, err := d.at("kz-pmpk-almaty").Move(ctx, r1.ID, referral.Complete, app.MoveInput{Outcome: "Assessed; individual learning plan opened.", Work: &schemas.Work{
		Assessment:   &schemas.Assessment{Conclusion: "Speech and communication delay; autism spectrum to be ruled out.", NeedsSupport: true},
		LearningPlan: &schemas.LearningPlan{Programme: "Early intervention, speech therapy twice a week", Goals: "Two-word phrases; joint attention", StartsOn: today.Format(time.DateOnly), ReviewOn: today.AddDate(0, 3, 0).Format(time.DateOnly)},
	}}); err != nil {
		return err
	}
	if _, err := d.refer(ctx, "kz-pmpk-almaty", "kz-fsc-almaly", "disability_support", "Assessment done: the family needs disability support and social rehabilitation.", r1.CaseID, nil); err != nil {
		return err
	}

	// 2. Crisis pregnancy (Kyrgyzstan): the family medicine centre ->
	// Ene üyü (accepted), then on to the ministry and back to health.
	r2, err := d.refer(ctx, "kg-fmc-bishkek", "kg-ene-uyu", "mothers_home", "Maternity ward: the mother is at risk of abandoning her newborn and needs temporary housing.", uuid.Nil, nil)
	if err != nil {
		return err
	}
	if _, err := d.at("kg-ene-uyu").Move(ctx, r2.ID, referral.Accept, app.MoveInput{Work: &schemas.Work{
		Placement: &schemas.Placement{Bed: "M-4", Address: "Bishkek, Ene üyü, 12 Toktogul street", EndsOn: today.AddDate(0, 4, 0).Format(time.DateOnly)},
	}}); err != nil {
		return err
	}
	if err := d.moves(ctx, "kg-ene-uyu", r2, referral.Start); err != nil {
		return err
	}
	toSocial, err := d.refer(ctx, "kg-ene-uyu", "kg-mlssm", "benefits_and_housing", "Mother's Home: the mother needs support after her stay.", r2.CaseID, nil)
	if err != nil {
		return err
	}
	if _, err := d.refer(ctx, "kg-ene-uyu", "kg-fmc-bishkek", "medical_accompaniment", "Mother's Home: medical accompaniment of the mother and the newborn.", r2.CaseID, nil); err != nil {
		return err
	}
	if err := d.moves(ctx, "kg-mlssm", toSocial, referral.Accept, referral.Start); err != nil {
		return err
	}
	if _, err := d.at("kg-mlssm").Move(ctx, toSocial.ID, referral.Complete, app.MoveInput{Outcome: "Childbirth and childcare benefits granted.", Work: &schemas.Work{
		BenefitDecision: &schemas.BenefitDecision{Benefit: "childcare_allowance", Decision: "granted"},
	}}); err != nil {
		return err
	}

	// 3. Domestic violence (Kazakhstan): the school -> a family support
	// centre, forwarded to Zhan-Saya, which has no free bed; then Nur.
	r3, err := d.referPerson(ctx, "kz-school-12", "kz-fsc-almaly", "family_support", "The school noticed signs of violence at home; the mother asks for help.", DemoIIN)
	if err != nil {
		return err
	}
	if err := d.moves(ctx, "kz-fsc-almaly", r3, referral.Accept); err != nil {
		return err
	}
	c, err := d.consent(ctx, "kz-fsc-almaly", "kz-zhan-saya", "a safe place for the mother and her children")
	if err != nil {
		return err
	}
	f, err := d.at("kz-fsc-almaly").Move(ctx, r3.ID, referral.Forward, app.MoveInput{ToOrg: "kz-zhan-saya", Service: "crisis_shelter", Note: "Mother and two children need a safe place tonight.", ConsentID: c.ID})
	if err != nil {
		return err
	}
	if err := d.received(ctx, "kz-zhan-saya", *f.ForwardedTo); err != nil {
		return err
	}
	if _, err := d.at("kz-zhan-saya").Move(ctx, *f.ForwardedTo, referral.Decline, app.MoveInput{ReasonCode: "no_capacity", Reason: "No free bed tonight."}); err != nil {
		return err
	}
	// The address of the shelter that takes them in stays at the shelter:
	// the centre learns that the family is placed, and until when.
	nur, err := d.refer(ctx, "kz-fsc-almaly", "kz-nur", "crisis_shelter_nur", "Mother and two children need a safe place tonight; the first shelter is full.", r3.CaseID, nil)
	if err != nil {
		return err
	}
	if _, err := d.at("kz-nur").Move(ctx, nur.ID, referral.Accept, app.MoveInput{Work: &schemas.Work{
		Placement: &schemas.Placement{Bed: "N-2", Address: "Almaty region, Nur crisis centre, 3 Abai street", EndsOn: today.AddDate(0, 3, 0).Format(time.DateOnly)},
	}}); err != nil {
		return err
	}

	// 4. Family in crisis (Kazakhstan): the other family support centre
	// -> Zhan-Saya (declined), -> the polyclinic (completed).
	r4a, err := d.refer(ctx, "kz-fsc-bostandyk", "kz-zhan-saya", "psychological_help", "The family is about to lose its housing; the parents are under severe strain.", uuid.Nil, nil)
	if err != nil {
		return err
	}
	r4b, err := d.refer(ctx, "kz-fsc-bostandyk", "kz-polyclinic-5", "child_health_check", "The youngest child (1 year) has missed patronage visits.", r4a.CaseID, nil)
	if err != nil {
		return err
	}
	if _, err := d.at("kz-zhan-saya").Move(ctx, r4a.ID, referral.Decline, app.MoveInput{ReasonCode: "not_eligible", Reason: "The family lives outside our area of service."}); err != nil {
		return err
	}
	if err := d.moves(ctx, "kz-polyclinic-5", r4b, referral.Accept, referral.Start); err != nil {
		return err
	}
	if _, err := d.at("kz-polyclinic-5").Move(ctx, r4b.ID, referral.Complete, app.MoveInput{Outcome: "Check done; nutrition support arranged.", Work: &schemas.Work{
		Screening: &schemas.Screening{Kind: "pediatric", Result: "concern", Findings: "underweight for age"},
	}}); err != nil {
		return err
	}
	fmt.Println("refbus: loaded the demo: four chains of help on two networks, thirteen referrals, with consents, screenings, an assessment and learning plan, a benefit decision and two shelter placements")
	return nil
}

// at is the application of the node that hosts organization org.
func (d demo) at(org string) *app.App { return d.svcs[nodeOf(org)] }

// consent records the family's consent, at organization from, to share a
// referral's summary and the sender's own work records with organization
// to, for 90 days.
func (d demo) consent(ctx context.Context, from, to, purpose string) (app.Consent, error) {
	cats := map[string]string{"health": "health", "education": "education", "social": "social", "ngo": "shelter"}
	return d.at(from).RecordConsent(app.WithOrg(ctx, from), app.NewConsent{
		GivenBy: "the mother, for herself and her children", ToOrg: to, Purpose: purpose,
		DataCategories: []string{schemas.CategorySummary, schemas.CategoryIdentity, cats[kindOf(from)]}, ExpiresAt: time.Now().AddDate(0, 0, 90),
	})
}

// DemoIIN is the made-up national id of the mother of the demo's third
// chain: only its keyed pseudonym is kept, and it travels sealed.
const DemoIIN = "880101300123"

// refer records the family's consent, sends a referral from organization
// from under it and waits until the receiver has it.
func (d demo) refer(ctx context.Context, from, to, service, note string, caseID uuid.UUID, work *schemas.Work) (app.Referral, error) {
	return d.send(ctx, from, to, service, app.NewReferral{Note: note, CaseID: caseID, Work: work})
}

// referPerson is refer, naming the person by national id.
func (d demo) referPerson(ctx context.Context, from, to, service, note, personID string) (app.Referral, error) {
	return d.send(ctx, from, to, service, app.NewReferral{Note: note, PersonID: personID})
}

func (d demo) send(ctx context.Context, from, to, service string, in app.NewReferral) (app.Referral, error) {
	c, err := d.consent(ctx, from, to, service)
	if err != nil {
		return app.Referral{}, err
	}
	in.ToOrg, in.FromOrg, in.Service, in.ConsentID = to, from, service, c.ID
	r, err := d.at(from).CreateReferral(app.WithOrg(ctx, from), in)
	if err != nil {
		return r, err
	}
	return r, d.received(ctx, to, r.ID)
}

// received waits until the node of organization org has referral id.
func (d demo) received(ctx context.Context, org string, id uuid.UUID) error {
	for {
		if _, err := d.at(org).Referral(ctx, id); err == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("referral %s did not reach %s: %w", id, org, ctx.Err())
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// moves makes moves that need no input, as organization org.
func (d demo) moves(ctx context.Context, org string, r app.Referral, mvs ...referral.Move) error {
	for _, mv := range mvs {
		if _, err := d.at(org).Move(ctx, r.ID, mv, app.MoveInput{}); err != nil {
			return err
		}
	}
	return nil
}

// kindOf is the kind of the node that hosts organization org.
func kindOf(org string) string {
	node := nodeOf(org)
	for _, n := range networks {
		for _, nd := range n.nodes {
			if nd.name == node {
				return nd.kind
			}
		}
	}
	return ""
}
