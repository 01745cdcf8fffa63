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

// loadDemo runs once: when health has sent nothing yet.
func loadDemo(ctx context.Context, svcs map[string]*app.App) error {
	sent, err := svcs["health"].Sent(ctx, "", 1)
	if err != nil || len(sent) > 0 {
		return err
	}
	d := demo{svcs: svcs}
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()

	// 1. Early intervention: health -> education (in progress) -> social.
	r1, err := d.refer(ctx, "health", "education", "early_intervention_assessment", "2-year check: speech and social delay; the family agrees to an assessment.", uuid.Nil,
		&schemas.Work{Screening: &schemas.Screening{Kind: "development_2y", Result: "concern", Findings: "no two-word phrases; little eye contact"}})
	if err != nil {
		return err
	}
	if err := d.moves(ctx, "education", r1, referral.Accept, referral.Start); err != nil {
		return err
	}
	today := time.Now().UTC()
	if _, err := d.svcs["education"].Move(ctx, r1.ID, referral.Complete, app.MoveInput{Outcome: "Assessed; individual learning plan opened.", Work: &schemas.Work{
		Assessment:   &schemas.Assessment{Conclusion: "Speech and communication delay; autism spectrum to be ruled out.", NeedsSupport: true},
		LearningPlan: &schemas.LearningPlan{Programme: "Early intervention, speech therapy twice a week", Goals: "Two-word phrases; joint attention", StartsOn: today.Format(time.DateOnly), ReviewOn: today.AddDate(0, 3, 0).Format(time.DateOnly)},
	}}); err != nil {
		return err
	}
	if _, err := d.refer(ctx, "education", "social", "disability_support", "Assessment done: the family needs disability support and social rehabilitation.", r1.CaseID, nil); err != nil {
		return err
	}

	// 2. Crisis pregnancy: health -> ngo (accepted), ngo -> social and back to health.
	r2, err := d.refer(ctx, "health", "ngo", "mothers_home", "Maternity ward: the mother is at risk of abandoning her newborn and needs temporary housing.", uuid.Nil, nil)
	if err != nil {
		return err
	}
	if _, err := d.svcs["ngo"].Move(ctx, r2.ID, referral.Accept, app.MoveInput{Work: &schemas.Work{
		Placement: &schemas.Placement{Bed: "M-4", Address: "Bishkek, Ene üyü, 12 Toktogul street", EndsOn: today.AddDate(0, 4, 0).Format(time.DateOnly)},
	}}); err != nil {
		return err
	}
	if err := d.moves(ctx, "ngo", r2, referral.Start); err != nil {
		return err
	}
	var toSocial app.Referral
	for _, to := range []string{"social", "health"} {
		service := map[string]string{"social": "benefits_and_housing", "health": "medical_accompaniment"}[to]
		r, err := d.refer(ctx, "ngo", to, service, "Mother's Home: the mother needs support after her stay.", r2.CaseID, nil)
		if err != nil {
			return err
		}
		if to == "social" {
			toSocial = r
		}
	}
	if err := d.moves(ctx, "social", toSocial, referral.Accept, referral.Start); err != nil {
		return err
	}
	if _, err := d.svcs["social"].Move(ctx, toSocial.ID, referral.Complete, app.MoveInput{Outcome: "Childbirth and childcare benefits granted.", Work: &schemas.Work{
		BenefitDecision: &schemas.BenefitDecision{Benefit: "childcare_allowance", Decision: "granted", MonthlyKZT: 45000},
	}}); err != nil {
		return err
	}

	// 3. Domestic violence: education -> social, forwarded to the shelter,
	// which has no free bed.
	r3, err := d.refer(ctx, "education", "social", "family_support", "The school noticed signs of violence at home; the mother asks for help.", uuid.Nil, nil)
	if err != nil {
		return err
	}
	if err := d.moves(ctx, "social", r3, referral.Accept); err != nil {
		return err
	}
	c, err := d.consent(ctx, "social", "ngo", "a safe place for the mother and her children")
	if err != nil {
		return err
	}
	f, err := d.svcs["social"].Move(ctx, r3.ID, referral.Forward, app.MoveInput{ToOrg: "ngo", Service: "crisis_shelter", Note: "Mother and two children need a safe place tonight.", ConsentID: c.ID})
	if err != nil {
		return err
	}
	if err := d.received(ctx, "ngo", *f.ForwardedTo); err != nil {
		return err
	}
	if _, err := d.svcs["ngo"].Move(ctx, *f.ForwardedTo, referral.Decline, app.MoveInput{ReasonCode: "no_capacity", Reason: "No free bed tonight."}); err != nil {
		return err
	}
	// Social sends the family to the other shelter, which takes them in;
	// its address goes to social only.
	nur, err := d.refer(ctx, "social", "ngo", "crisis_shelter_nur", "Mother and two children need a safe place tonight; the first shelter is full.", r3.CaseID, nil)
	if err != nil {
		return err
	}
	if _, err := d.svcs["ngo"].Move(ctx, nur.ID, referral.Accept, app.MoveInput{Work: &schemas.Work{
		Placement: &schemas.Placement{Bed: "N-2", Address: "Almaty region, Nur crisis centre, 3 Abai street", EndsOn: today.AddDate(0, 3, 0).Format(time.DateOnly)},
	}}); err != nil {
		return err
	}

	// 4. Family in crisis: social -> ngo (declined), social -> health (completed).
	r4a, err := d.refer(ctx, "social", "ngo", "psychological_help", "The family is about to lose its housing; the parents are under severe strain.", uuid.Nil, nil)
	if err != nil {
		return err
	}
	r4b, err := d.refer(ctx, "social", "health", "child_health_check", "The youngest child (1 year) has missed patronage visits.", r4a.CaseID, nil)
	if err != nil {
		return err
	}
	if _, err := d.svcs["ngo"].Move(ctx, r4a.ID, referral.Decline, app.MoveInput{ReasonCode: "not_eligible", Reason: "The family lives outside our area of service."}); err != nil {
		return err
	}
	if err := d.moves(ctx, "health", r4b, referral.Accept, referral.Start); err != nil {
		return err
	}
	if _, err := d.svcs["health"].Move(ctx, r4b.ID, referral.Complete, app.MoveInput{Outcome: "Check done; nutrition support arranged.", Work: &schemas.Work{
		Screening: &schemas.Screening{Kind: "pediatric", Result: "concern", Findings: "underweight for age"},
	}}); err != nil {
		return err
	}
	fmt.Println("refbus: loaded the demo: four chains of help, thirteen referrals, with consents, screenings, an assessment and learning plan, a benefit decision and two shelter placements")
	return nil
}

// consent records the family's consent, at agency from, to share a
// referral's summary and the sender's own work records with agency to, for
// 90 days.
func (d demo) consent(ctx context.Context, from, to, purpose string) (app.Consent, error) {
	// The demo families consent to share the summary and the sender's own
	// work records (by the category of each record its kind makes).
	cats := map[string]string{"health": "health", "education": "education", "social": "social", "ngo": "shelter"}
	return d.svcs[from].RecordConsent(ctx, app.NewConsent{
		GivenBy: "the mother, for herself and her children", ToOrg: to, Purpose: purpose,
		DataCategories: []string{schemas.CategorySummary, cats[from]}, ExpiresAt: time.Now().AddDate(0, 0, 90),
	})
}

// refer records the family's consent, sends a referral under it and waits
// until the receiver has it.
func (d demo) refer(ctx context.Context, from, to, service, note string, caseID uuid.UUID, work *schemas.Work) (app.Referral, error) {
	c, err := d.consent(ctx, from, to, service)
	if err != nil {
		return app.Referral{}, err
	}
	r, err := d.svcs[from].CreateReferral(ctx, app.NewReferral{ToOrg: to, Service: service, Note: note, CaseID: caseID, ConsentID: c.ID, Work: work})
	if err != nil {
		return r, err
	}
	return r, d.received(ctx, to, r.ID)
}

// received waits until agency a has referral id.
func (d demo) received(ctx context.Context, a string, id uuid.UUID) error {
	for {
		if _, err := d.svcs[a].Referral(ctx, id); err == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("referral %s did not reach %s: %w", id, a, ctx.Err())
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// moves makes moves that need no input, as agency a.
func (d demo) moves(ctx context.Context, a string, r app.Referral, mvs ...referral.Move) error {
	for _, mv := range mvs {
		if _, err := d.svcs[a].Move(ctx, r.ID, mv, app.MoveInput{}); err != nil {
			return err
		}
	}
	return nil
}
