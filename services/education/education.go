// Package education is the kind of node of early-intervention centres,
// PMPK assessment and schools. Its work records are the assessment of a
// child and the individual learning plan opened from it, kept in its own
// tables and told to the node that referred the child.
package education

import (
	"context"
	"fmt"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/pgtype"

	"github.com/refbus/refbus/schemas"
	"github.com/refbus/refbus/services/education/internal/educationdb"
	"github.com/refbus/refbus/services/internal/core/directory"
	"github.com/refbus/refbus/services/internal/core/kind"
)

// Kind is the education kind of node.
type Kind struct{ kind.Base }

// New returns the education kind, for one node.
func New() *Kind {
	return &Kind{Base: kind.Base{Kind: "education", Line: educationdb.Migrations, Work: []string{"assessment", "learning_plan"}, Defaults: offers}}
}

// offers are what an education node offers unless configured otherwise.
var offers = func() []directory.Offer {
	kk := []string{"kk", "ru"}
	return []directory.Offer{
		{Name: "early_intervention_assessment", Title: "PMPK assessment and early intervention", Eligibility: "children 0-7 with a suspected developmental delay", Languages: kk, Area: "Almaty",
			AcceptWithin: directory.Duration(10 * 24 * time.Hour), CompleteWithin: directory.Duration(60 * 24 * time.Hour)},
		{Name: "school_transfer", Title: "School or kindergarten transfer", Eligibility: "children of school and preschool age", Languages: kk, Area: "Almaty"},
	}
}()

// CheckWork: a learning plan is opened from an assessment, and is reviewed
// after it starts.
func (*Kind) CheckWork(w *schemas.Work) error {
	p := w.LearningPlan
	if p == nil {
		return nil
	}
	if w.Assessment == nil {
		return fmt.Errorf("%w: work: a learning plan is opened from an assessment: give both", kind.ErrInvalid)
	}
	start, err := kind.Date("learning_plan.starts_on", p.StartsOn)
	if err != nil {
		return err
	}
	review, err := kind.Date("learning_plan.review_on", p.ReviewOn)
	if err != nil {
		return err
	}
	if !review.After(start) {
		return fmt.Errorf("%w: learning_plan.review_on must come after starts_on", kind.ErrInvalid)
	}
	return nil
}

// RecordWork keeps an assessment and the learning plan opened from it.
func (*Kind) RecordWork(ctx context.Context, db kind.DB, r kind.Referral, w *schemas.Work) error {
	a := w.Assessment
	if a == nil {
		return nil
	}
	q := educationdb.New(db)
	id := uuid.Must(uuid.NewV7())
	if err := q.AssessmentInsert(ctx, educationdb.AssessmentInsertParams{ID: id, ReferralID: &r.ID, CaseID: r.CaseID, Conclusion: a.Conclusion, NeedsSupport: a.NeedsSupport}); err != nil {
		return fmt.Errorf("record assessment: %w", err)
	}
	p := w.LearningPlan
	if p == nil {
		return nil
	}
	start, _ := kind.Date("learning_plan.starts_on", p.StartsOn) // checked by CheckWork
	review, _ := kind.Date("learning_plan.review_on", p.ReviewOn)
	err := q.LearningPlanInsert(ctx, educationdb.LearningPlanInsertParams{
		ID: uuid.Must(uuid.NewV7()), AssessmentID: id, ReferralID: &r.ID, CaseID: r.CaseID, Programme: p.Programme, Goals: p.Goals,
		StartsOn: pgtype.Date{Time: start, Valid: true}, ReviewOn: pgtype.Date{Time: review, Valid: true},
	})
	if err != nil {
		return fmt.Errorf("record learning plan: %w", err)
	}
	return nil
}

// Erase empties what the assessments and learning plans of referrals ids
// say.
func (*Kind) Erase(ctx context.Context, db kind.DB, ids []uuid.UUID) error {
	q := educationdb.New(db)
	if err := q.AssessmentErase(ctx, ids); err != nil {
		return err
	}
	return q.LearningPlanErase(ctx, ids)
}
