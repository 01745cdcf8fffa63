// Package social is the kind of node of labour and social protection and
// the family support centres. Its work record is the decision on a
// benefit, kept in its own table and told to the node that referred the
// family.
package social

import (
	"context"
	"fmt"

	"github.com/google/uuid"

	"github.com/refbus/refbus/schemas"
	"github.com/refbus/refbus/services/internal/core/directory"
	"github.com/refbus/refbus/services/internal/core/kind"
	"github.com/refbus/refbus/services/social/internal/socialdb"
)

// Kind is the social protection kind of node.
type Kind struct{ kind.Base }

// New returns the social kind, for one node.
func New() *Kind {
	return &Kind{Base: kind.Base{Kind: "social", Line: socialdb.Migrations, Work: []string{"benefit_decision"}, Defaults: offers}}
}

// offers are what a social node offers unless configured otherwise.
var offers = func() []directory.Offer {
	kk, ky := []string{"kk", "ru"}, []string{"ky", "ru"}
	return []directory.Offer{
		{Name: "family_support", Title: "Family Support Centre: social, legal and psychological help", Eligibility: "families in difficulty", Languages: kk, Area: "Almaty"},
		{Name: "disability_support", Title: "Disability support and social rehabilitation", Eligibility: "children with a disability and their families", Languages: kk, Area: "Almaty"},
		{Name: "benefits_and_housing", Title: "Benefits and housing help", Eligibility: "low-income families, mothers with newborns", Languages: kk, Area: "Almaty"},
		{Name: "housing", Title: "Housing help", Eligibility: "families at risk of losing their home", Languages: ky, Area: "Bishkek"},
	}
}()

// CheckWork: a refused benefit has no monthly amount.
func (*Kind) CheckWork(w *schemas.Work) error {
	if b := w.BenefitDecision; b != nil && b.Decision != "granted" && b.MonthlyKZT != 0 {
		return fmt.Errorf("%w: work: a refused benefit has no monthly amount", kind.ErrInvalid)
	}
	return nil
}

// RecordWork keeps a benefit decision.
func (*Kind) RecordWork(ctx context.Context, db kind.DB, r kind.Referral, w *schemas.Work) error {
	b := w.BenefitDecision
	if b == nil {
		return nil
	}
	err := socialdb.New(db).BenefitDecisionInsert(ctx, socialdb.BenefitDecisionInsertParams{
		ID: uuid.Must(uuid.NewV7()), ReferralID: &r.ID, CaseID: r.CaseID, Benefit: b.Benefit, Decision: b.Decision, MonthlyKzt: int32(b.MonthlyKZT), Reason: b.Reason,
	})
	if err != nil {
		return fmt.Errorf("record benefit decision: %w", err)
	}
	return nil
}

// Erase empties why the benefit decisions of referrals ids were made.
func (*Kind) Erase(ctx context.Context, db kind.DB, ids []uuid.UUID) error {
	return socialdb.New(db).BenefitDecisionErase(ctx, ids)
}
