// Package ngo is the kind of node of crisis centres and shelters, the
// Mother's Home and child-rights NGOs. Its work record is the placement: a
// bed in a service that takes people in, for at most six months, at an
// address that is confidential. It keeps the beds of those services, takes
// one when it accepts a referral and frees it when the referral ends, and
// declines at once, with no_capacity, a referral it has no free bed for.
package ngo

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgtype"

	"github.com/refbus/refbus/pkg/referral"
	"github.com/refbus/refbus/schemas"
	"github.com/refbus/refbus/services/internal/core/directory"
	"github.com/refbus/refbus/services/internal/core/kind"
	"github.com/refbus/refbus/services/ngo/internal/ngodb"
)

// maxStayMonths is the longest stay in a shelter.
const maxStayMonths = 6

// Kind is the NGO kind of node. Make one per node with New.
type Kind struct {
	kind.Base
	// beds names the node's services that take people in, and now is its
	// clock, as Open was told.
	beds map[string]bool
	now  func() time.Time
}

// New returns the NGO kind, for one node.
func New() *Kind {
	return &Kind{
		Base: kind.Base{Kind: "ngo", Line: ngodb.Migrations, Work: []string{"placement"}, Defaults: offers},
		beds: map[string]bool{}, now: time.Now,
	}
}

// offers are what an NGO node offers unless configured otherwise.
var offers = func() []directory.Offer {
	ru, kk, ky := []string{"ru"}, []string{"kk", "ru"}, []string{"ky", "ru"}
	stay := directory.Duration(183 * 24 * time.Hour)
	return []directory.Offer{
		{Name: "crisis_shelter", Title: "Crisis centre Zhan-Saya: safe stay up to 6 months", Eligibility: "women and children who suffered domestic violence", Languages: kk, Area: "Almaty", Beds: 52,
			AcceptWithin: directory.Duration(2 * time.Hour), CompleteWithin: stay},
		{Name: "crisis_shelter_nur", Title: "Crisis centre Nur: safe stay up to 6 months", Eligibility: "women and children who suffered domestic violence", Languages: ru, Area: "Almaty region", Beds: 12,
			AcceptWithin: directory.Duration(2 * time.Hour), CompleteWithin: stay},
		{Name: "mothers_home", Title: "Mother's Home (Ene üyü): temporary housing and help", Eligibility: "pregnant women and mothers of newborns in crisis", Languages: ky, Area: "Bishkek", Beds: 20,
			AcceptWithin: directory.Duration(24 * time.Hour)},
		{Name: "psychological_help", Title: "Psychological help", Eligibility: "families in crisis", Languages: kk, Area: "Almaty"},
		{Name: "legal_help", Title: "Legal consultation", Eligibility: "families in crisis", Languages: kk, Area: "Almaty"},
	}
}()

// Open records the beds of the services that take people in.
func (k *Kind) Open(ctx context.Context, db kind.DB, n kind.Node) error {
	if n.Now != nil {
		k.now = n.Now
	}
	q := ngodb.New(db)
	for _, org := range n.Organizations {
		for _, o := range org.Services {
			if o.Beds > 0 {
				if err := q.CapacitySet(ctx, ngodb.CapacitySetParams{Service: o.Name, Beds: int32(o.Beds)}); err != nil {
					return fmt.Errorf("record capacity of %s: %w", o.Name, err)
				}
				k.beds[o.Name] = true
			}
		}
	}
	return nil
}

// Accepting: accepting a referral to a service that takes people in takes
// a bed, so it needs a placement.
func (k *Kind) Accepting(_ context.Context, _ kind.DB, r kind.Referral, w *schemas.Work) error {
	if k.beds[r.Service] && (w == nil || w.Placement == nil) {
		return fmt.Errorf("%w: accepting a referral to %s takes a bed: give work.placement (bed, address, ends_on)", kind.ErrInvalid, r.Service)
	}
	return nil
}

// RecordWork checks a placement, takes a bed and records the stay; a stay
// without a first day starts today. Returns ErrInvalid for a stay too long
// or a service that takes no one in, ErrConflict when no bed is free or
// the bed is taken.
func (k *Kind) RecordWork(ctx context.Context, db kind.DB, r kind.Referral, w *schemas.Work) error {
	p := w.Placement
	if p == nil {
		return nil
	}
	if !k.beds[r.Service] {
		return fmt.Errorf("%w: %s takes no one in: a placement needs a shelter service", kind.ErrInvalid, r.Service)
	}
	today := k.now().UTC().Truncate(24 * time.Hour)
	start := today
	if p.StartsOn != "" {
		var err error
		if start, err = kind.Date("placement.starts_on", p.StartsOn); err != nil {
			return err
		}
	}
	end, err := kind.Date("placement.ends_on", p.EndsOn)
	if err != nil {
		return err
	}
	switch {
	case start.Before(today.AddDate(0, 0, -1)):
		return fmt.Errorf("%w: placement.starts_on %s is in the past", kind.ErrInvalid, p.StartsOn)
	case !end.After(start):
		return fmt.Errorf("%w: placement.ends_on must come after starts_on", kind.ErrInvalid)
	case end.After(start.AddDate(0, maxStayMonths, 0)):
		return fmt.Errorf("%w: placement.ends_on %s: a stay lasts at most %d months, until %s", kind.ErrInvalid, p.EndsOn, maxStayMonths, start.AddDate(0, maxStayMonths, 0).Format(time.DateOnly))
	}
	p.StartsOn = start.Format(time.DateOnly)
	// The stay first, then the bed: a referral that has its stay, or a
	// bed that is taken, is told as such even when the shelter is full.
	// The caller's transaction rolls both back on an error.
	q := ngodb.New(db)
	err = q.PlacementInsert(ctx, ngodb.PlacementInsertParams{
		ID: uuid.Must(uuid.NewV7()), ReferralID: r.ID, CaseID: r.CaseID, Service: r.Service, Bed: p.Bed, Address: p.Address,
		StartsOn: pgtype.Date{Time: start, Valid: true}, EndsOn: pgtype.Date{Time: end, Valid: true},
	})
	var pg *pgconn.PgError
	if errors.As(err, &pg) && pg.Code == "23505" {
		if pg.ConstraintName == "placement_referral" {
			return fmt.Errorf("%w: referral %s already has its placement: a stay is recorded once, when the shelter accepts", kind.ErrConflict, r.ID)
		}
		return fmt.Errorf("%w: bed %s of %s is taken", kind.ErrConflict, p.Bed, r.Service)
	}
	if err != nil {
		return fmt.Errorf("record placement: %w", err)
	}
	if _, err := q.CapacityTake(ctx, r.Service); errors.Is(err, pgx.ErrNoRows) {
		return fmt.Errorf("%w: no free bed in %s: decline with reason_code no_capacity", kind.ErrConflict, r.Service)
	} else if err != nil {
		return fmt.Errorf("take a bed: %w", err)
	}
	return nil
}

// Wants the referrals to a service that takes people in.
func (k *Kind) Wants(r kind.Referral) bool { return k.beds[r.Service] }

// Received declines at once a referral to a service with no free bed, so
// the sender can refer the family to another shelter.
func (k *Kind) Received(ctx context.Context, db kind.DB, r kind.Referral) (*kind.Decline, error) {
	c, err := ngodb.New(db).CapacityGet(ctx, r.Service)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read capacity: %w", err)
	}
	if c.Used < c.Beds {
		return nil, nil
	}
	return &kind.Decline{
		ReasonCode: string(referral.NoCapacity),
		Reason:     "no free bed in " + strings.ReplaceAll(r.Service, "_", " ") + " now: refer the family to another shelter",
	}, nil
}

// Ended ends the stay of a referral's placement and frees its bed.
func (*Kind) Ended(ctx context.Context, db kind.DB, r kind.Referral) error {
	q := ngodb.New(db)
	service, err := q.PlacementEnd(ctx, r.ID)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("end stay: %w", err)
	}
	return q.CapacityFree(ctx, service)
}

// Places are the free beds of each service that takes people in.
func (*Kind) Places(ctx context.Context, db kind.DB) (map[string]int, error) {
	caps, err := ngodb.New(db).CapacityList(ctx)
	if err != nil {
		return nil, fmt.Errorf("read capacity: %w", err)
	}
	out := make(map[string]int, len(caps))
	for _, c := range caps {
		out[c.Service] = int(c.Beds - c.Used)
	}
	return out, nil
}

// CheckWork accepts any placement: RecordWork checks it against the beds.
func (*Kind) CheckWork(*schemas.Work) error { return nil }
