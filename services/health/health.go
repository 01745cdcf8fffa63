// Package health is the kind of node of polyclinics, perinatal centres
// and patronage nurses. Its work record is the screening (a patronage
// visit, a pediatric check), kept in its own table and told to the node a
// child is referred to.
package health

import (
	"context"
	"fmt"

	"github.com/google/uuid"

	"github.com/refbus/refbus/schemas"
	"github.com/refbus/refbus/services/health/internal/healthdb"
	"github.com/refbus/refbus/services/internal/core/directory"
	"github.com/refbus/refbus/services/internal/core/kind"
)

// Kind is the health kind of node.
type Kind struct{ kind.Base }

// New returns the health kind, for one node.
func New() *Kind {
	return &Kind{kind.Base{Kind: "health", Line: healthdb.Migrations, Work: []string{"screening"}, Defaults: offers}}
}

// offers are what a health node offers unless configured otherwise.
var offers = func() []directory.Offer {
	kk := []string{"kk", "ru"}
	return []directory.Offer{
		{Name: "child_health_check", Title: "Pediatric check of a child", Eligibility: "children 0-18", Languages: kk, Area: "Almaty"},
		{Name: "medical_accompaniment", Title: "Medical accompaniment of a pregnancy or a newborn", Eligibility: "pregnant women, mothers of infants", Languages: kk, Area: "Almaty"},
		{Name: "medical_rehabilitation", Title: "Medical rehabilitation", Eligibility: "children with a developmental disorder", Languages: kk, Area: "Almaty"},
	}
}()

// RecordWork keeps a screening.
func (*Kind) RecordWork(ctx context.Context, db kind.DB, r kind.Referral, w *schemas.Work) error {
	sc := w.Screening
	if sc == nil {
		return nil
	}
	err := healthdb.New(db).ScreeningInsert(ctx, healthdb.ScreeningInsertParams{
		ID: uuid.Must(uuid.NewV7()), ReferralID: &r.ID, CaseID: r.CaseID, Kind: sc.Kind, Result: sc.Result, Findings: sc.Findings,
	})
	if err != nil {
		return fmt.Errorf("record screening: %w", err)
	}
	return nil
}

// Erase empties what the screenings of referrals ids found.
func (*Kind) Erase(ctx context.Context, db kind.DB, ids []uuid.UUID) error {
	return healthdb.New(db).ScreeningErase(ctx, ids)
}
