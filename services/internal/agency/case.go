package agency

import (
	"context"
	"fmt"
	"time"

	"github.com/google/uuid"

	"github.com/refbus/refbus/services/internal/db"
)

// Step is one move in a referral's life, as this agency recorded it.
type Step struct {
	ReferralID uuid.UUID `json:"referral_id"`
	Agency     string    `json:"agency" doc:"Who made the move."`
	Move       string    `json:"move"`
	Status     string    `json:"status" doc:"The referral's status after the move."`
	ReasonCode string    `json:"reason_code,omitempty"`
	Reason     string    `json:"reason,omitempty"`
	Outcome    string    `json:"outcome,omitempty"`
	At         time.Time `json:"at"`
}

// Case is a case as this agency may see it: the referrals it sent and
// received in the case, and the timeline of their moves.
type Case struct {
	ID        uuid.UUID  `json:"id"`
	Referrals []Referral `json:"referrals"`
	Timeline  []Step     `json:"timeline"`
}

// Case returns the case with id. Returns ErrNotFound if this agency has no
// referral in it.
func (s *Service) Case(ctx context.Context, id uuid.UUID) (Case, error) {
	q := db.New(s.pool)
	rs, err := q.ReferralListByCase(ctx, id)
	if err != nil {
		return Case{}, fmt.Errorf("list case referrals: %w", err)
	}
	if len(rs) == 0 {
		return Case{}, fmt.Errorf("%w: %s has no referral in case %s", ErrNotFound, s.self, id)
	}
	hs, err := q.HistoryByCase(ctx, id)
	if err != nil {
		return Case{}, fmt.Errorf("read case history: %w", err)
	}
	return Case{
		ID:        id,
		Referrals: mapSlice(rs, referralFromDB),
		Timeline: mapSlice(hs, func(h db.ReferralHistory) Step {
			return Step{ReferralID: h.ReferralID, Agency: h.Agency, Move: h.Move, Status: h.Status, ReasonCode: h.ReasonCode, Reason: h.Reason, Outcome: h.Outcome, At: h.At}
		}),
	}, nil
}
