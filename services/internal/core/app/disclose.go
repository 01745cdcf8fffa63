package app

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	ce "github.com/cloudevents/sdk-go/v2/event"
	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/refbus/refbus/pkg/bus"
	"github.com/refbus/refbus/pkg/event"
	"github.com/refbus/refbus/pkg/inbox"
	"github.com/refbus/refbus/pkg/outbox"
	"github.com/refbus/refbus/schemas"
	"github.com/refbus/refbus/services/internal/core/coredb"
)

// A shelter's address does not leave the shelter, except where the
// shelter itself discloses it to one named organization, for a stated
// purpose and until a time (a patronage nurse's home visit): the address
// and the purpose travel sealed to that organization's node alone, which
// shows them to that organization's users only and forgets them at
// the time given.

// Disclosure is an address a shelter disclosed, as this node holds it.
type Disclosure struct {
	ID         uuid.UUID  `json:"id"`
	CaseID     uuid.UUID  `json:"case_id"`
	ReferralID *uuid.UUID `json:"referral_id,omitempty" doc:"The shelter's referral the family was placed under (at the shelter only)."`
	FromOrg    string     `json:"from_org" doc:"The shelter that disclosed it."`
	ToOrg      string     `json:"to_org" doc:"The one organization that may see it."`
	Purpose    string     `json:"purpose"`
	Address    string     `json:"address,omitempty" doc:"Shown to the users of to_org only; the shelter's own record of what it disclosed leaves it out."`
	Until      time.Time  `json:"until" doc:"When the organization's node forgets it."`
}

// NewDisclosure is what a shelter's caseworker gives to disclose where a
// family it placed stays.
type NewDisclosure struct {
	ToOrg   string
	Purpose string
	Until   time.Time
}

// DiscloseAddress discloses the address where the family of referral id,
// which this node's shelter accepted with a placement, stays, to
// organization in.ToOrg of another node, for in.Purpose until in.Until.
// Returns ErrNotFound, ErrInvalid (no purpose, a time past or more than
// the stay, an organization not listed or of this node), ErrConflict (no
// placement with an address).
func (a *App) DiscloseAddress(ctx context.Context, id uuid.UUID, in NewDisclosure) (Disclosure, error) {
	if strings.TrimSpace(in.Purpose) == "" {
		return Disclosure{}, fmt.Errorf("%w: purpose is required: say what the address is disclosed for", ErrInvalid)
	}
	now := a.cfg.Now()
	if !in.Until.After(now) {
		return Disclosure{}, fmt.Errorf("%w: until %s has passed", ErrInvalid, in.Until.UTC().Format(time.RFC3339))
	}
	r, err := a.Referral(ctx, id)
	if err != nil {
		return Disclosure{}, err
	}
	if r.ToAgency != a.self || r.Work == nil || r.Work.Placement == nil || r.Work.Placement.Address == "" {
		return Disclosure{}, fmt.Errorf("%w: referral %s has no placement with an address at %s: only the shelter that placed the family discloses where it stays", ErrConflict, id, a.self)
	}
	if end, err := time.Parse(time.DateOnly, r.Work.Placement.EndsOn); err == nil && in.Until.After(end.AddDate(0, 0, 1)) {
		return Disclosure{}, fmt.Errorf("%w: until %s is after the stay ends (%s)", ErrInvalid, in.Until.UTC().Format(time.RFC3339), r.Work.Placement.EndsOn)
	}
	if _, own := a.own(in.ToOrg); own {
		return Disclosure{}, fmt.Errorf("%w: to_org %s is an organization of this node, which holds the address already", ErrInvalid, in.ToOrg)
	}
	to, err := a.organization(ctx, "to_org", in.ToOrg)
	if err != nil {
		return Disclosure{}, err
	}
	d := Disclosure{ID: uuid.Must(uuid.NewV7()), CaseID: r.CaseID, ReferralID: &r.ID, FromOrg: r.ToOrg, ToOrg: in.ToOrg, Purpose: in.Purpose, Until: in.Until.UTC().Truncate(time.Microsecond)}
	e, err := a.registry.New(bus.Source(a.self), schemas.TypeAddressDisclosed, d.ID.String(), schemas.AddressDisclosed{
		FromOrg: d.FromOrg, ToOrg: d.ToOrg, Until: d.Until, Purpose: d.Purpose, Address: r.Work.Placement.Address,
	})
	if err != nil {
		return Disclosure{}, fmt.Errorf("%w: %v", ErrInvalid, err)
	}
	e.SetExtension(event.ExtCaseID, r.CaseID.String())
	key, wrapped, err := a.NewDataKey(ctx, to.Node, d.ID)
	if err != nil {
		return Disclosure{}, err
	}
	err = a.inTx(ctx, func(q *coredb.Queries, tx pgx.Tx) error {
		if err := q.DisclosureInsert(ctx, coredb.DisclosureInsertParams{
			ID: d.ID, CaseID: d.CaseID, ReferralID: d.ReferralID, FromNode: a.self, FromOrg: d.FromOrg, ToNode: to.Node, ToOrg: d.ToOrg, Purpose: d.Purpose, Until: d.Until,
		}); err != nil {
			return fmt.Errorf("record disclosure: %w", err)
		}
		return a.enqueue(ctx, tx, outbox.Message{To: to.Node, Event: e, DataKey: key, WrappedKey: wrapped})
	})
	if err != nil {
		if known(err) {
			return Disclosure{}, err
		}
		return Disclosure{}, fmt.Errorf("disclose address: %w", err)
	}
	return d, nil
}

// applyDisclosed keeps an address a shelter disclosed to an organization
// of this node.
func (a *App) applyDisclosed(ctx context.Context, q *coredb.Queries, e *ce.Event) (error, error) {
	id, err := uuid.Parse(e.Subject())
	if err != nil {
		return inbox.Reject("event subject %q is not a disclosure id (a UUID)", e.Subject()), nil
	}
	caseID, err := uuid.Parse(event.CaseID(e))
	if err != nil {
		return inbox.Reject("caseid extension %q is not a case id (a UUID)", event.CaseID(e)), nil
	}
	opened, _, err := a.openRequest(ctx, e, id)
	if err != nil {
		return err, nil
	}
	var d schemas.AddressDisclosed
	if err := event.Data(opened, &d); err != nil {
		return inbox.Reject("%v", err), nil
	}
	if _, ok := a.own(d.ToOrg); !ok {
		return inbox.Reject("the address is disclosed to %s, which %s does not host", d.ToOrg, a.self), nil
	}
	from, _ := bus.NodeOf(e.Source())
	if a.hosts != nil {
		err := a.hosts(ctx, from, d.FromOrg)
		if errors.Is(err, ErrNotHosted) {
			return inbox.Reject("the address is disclosed by %s, which its sender %s may not speak for: %v", d.FromOrg, from, err), nil
		}
		if err != nil {
			return inbox.Later(err), nil
		}
	}
	if !d.Until.After(a.cfg.Now()) {
		return nil, nil // expired on the way: nothing to keep
	}
	if err := q.DisclosureInsert(ctx, coredb.DisclosureInsertParams{
		ID: id, CaseID: caseID, FromNode: from, FromOrg: d.FromOrg, ToNode: a.self, ToOrg: d.ToOrg, Purpose: d.Purpose, Address: d.Address, Until: d.Until,
	}); err != nil {
		return nil, fmt.Errorf("keep disclosure: %w", err)
	}
	return nil, nil
}

// Disclosures are the addresses disclosed to the caller's organization
// that have not expired, with the address, and those this node's
// shelters disclosed, without it. A caller of the node as a whole sees
// what its shelters disclosed only: an address is for the caseworkers of
// the organization it was disclosed to.
func (a *App) Disclosures(ctx context.Context) ([]Disclosure, error) {
	org := OrgOf(ctx)
	rows, err := coredb.New(a.pool).DisclosureList(ctx, coredb.DisclosureListParams{Now: a.cfg.Now(), Org: org})
	if err != nil {
		return nil, fmt.Errorf("list disclosures: %w", err)
	}
	out := make([]Disclosure, 0, len(rows))
	for _, r := range rows {
		d := Disclosure{ID: r.ID, CaseID: r.CaseID, ReferralID: r.ReferralID, FromOrg: r.FromOrg, ToOrg: r.ToOrg, Purpose: r.Purpose, Until: r.Until}
		switch {
		case r.FromNode == a.self:
		case org != "" && r.ToOrg == org:
			d.Address = r.Address
		default:
			continue
		}
		out = append(out, d)
	}
	return out, nil
}

// DropExpiredDisclosures forgets the disclosed addresses whose time has
// come; it returns how many.
func (a *App) DropExpiredDisclosures(ctx context.Context) (int64, error) {
	return coredb.New(a.pool).DisclosureDeleteExpired(ctx, a.cfg.Now())
}
