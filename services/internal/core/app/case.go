package app

import (
	"context"
	"fmt"
	"sort"
	"time"

	"github.com/google/uuid"

	"github.com/refbus/refbus/pkg/referral"
	"github.com/refbus/refbus/services/internal/core/coredb"
)

// Step is one move in a referral's life, as this node recorded it.
type Step struct {
	ReferralID uuid.UUID `json:"referral_id"`
	Agency     string    `json:"agency" doc:"The node that made the move."`
	Move       string    `json:"move"`
	Status     string    `json:"status" doc:"The referral's status after the move."`
	ReasonCode string    `json:"reason_code,omitempty"`
	Reason     string    `json:"reason,omitempty"`
	Outcome    string    `json:"outcome,omitempty"`
	At         time.Time `json:"at"`
}

// Case is a case as this node may see it: the referrals it sent and
// received in the case, and the timeline of their moves.
type Case struct {
	ID        uuid.UUID  `json:"id"`
	Referrals []Referral `json:"referrals"`
	Timeline  []Step     `json:"timeline"`
}

// Case returns the case with id: of a caller of one organization, the
// referrals that organization sent or received. Returns ErrNotFound if
// the caller sees no referral in it.
func (a *App) Case(ctx context.Context, id uuid.UUID) (Case, error) {
	q := coredb.New(a.pool)
	all, err := q.ReferralListByCase(ctx, id)
	if err != nil {
		return Case{}, fmt.Errorf("list case referrals: %w", err)
	}
	var rs []coredb.Referral
	seen := map[uuid.UUID]bool{}
	for _, r := range all {
		if a.sees(ctx, r) {
			rs, seen[r.ID] = append(rs, r), true
		}
	}
	if len(rs) == 0 {
		return Case{}, fmt.Errorf("%w: %s has no referral in case %s", ErrNotFound, a.self, id)
	}
	hs, err := q.HistoryByCase(ctx, id)
	if err != nil {
		return Case{}, fmt.Errorf("read case history: %w", err)
	}
	// The request and the receipt are on the referral row; the later
	// moves are in the history.
	var steps []Step
	for _, r := range rs {
		steps = append(steps, Step{ReferralID: r.ID, Agency: r.FromAgency, Move: "request", Status: string(referral.Requested), At: r.CreatedAt})
		if r.ReceivedAt != nil {
			steps = append(steps, Step{ReferralID: r.ID, Agency: r.ToAgency, Move: "receive", Status: string(referral.Received), At: *r.ReceivedAt})
		}
	}
	for _, h := range hs {
		if !seen[h.ReferralID] {
			continue
		}
		steps = append(steps, Step{ReferralID: h.ReferralID, Agency: h.Agency, Move: h.Move, Status: h.Status, ReasonCode: h.ReasonCode, Reason: h.Reason, Outcome: h.Outcome, At: h.At})
	}
	sort.SliceStable(steps, func(i, j int) bool { return steps[i].At.Before(steps[j].At) })
	return Case{ID: id, Referrals: a.referrals(ctx, rs), Timeline: steps}, nil
}
