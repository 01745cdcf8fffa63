package agency

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgtype"

	"github.com/refbus/refbus/pkg/referral"
	"github.com/refbus/refbus/services/internal/db"
)

// Work is an agency's own work on a referral, as its events carry it to
// the other party: health's screening, education's assessment and learning
// plan, social's benefit decision, the ngo's shelter placement. Each agency
// records only its own kind, in its own tables.
type Work struct {
	Screening       *Screening       `json:"screening,omitempty" doc:"health"`
	Assessment      *Assessment      `json:"assessment,omitempty" doc:"education"`
	LearningPlan    *LearningPlan    `json:"learning_plan,omitempty" doc:"education, with an assessment"`
	BenefitDecision *BenefitDecision `json:"benefit_decision,omitempty" doc:"social"`
	Placement       *Placement       `json:"placement,omitempty" doc:"ngo, when it accepts a referral to a shelter"`
}

// Screening is a health check of a child or a mother.
type Screening struct {
	Kind     string `json:"kind" minLength:"1" maxLength:"100" doc:"e.g. development_2y, patronage, pediatric"`
	Result   string `json:"result" enum:"normal,concern,urgent"`
	Findings string `json:"findings,omitempty" required:"false" maxLength:"4000"`
}

// Assessment is education's (PMPK) assessment of a child.
type Assessment struct {
	Conclusion   string `json:"conclusion" minLength:"1" maxLength:"4000"`
	NeedsSupport bool   `json:"needs_support"`
}

// LearningPlan is an individual learning plan opened from an assessment.
type LearningPlan struct {
	Programme string `json:"programme" minLength:"1" maxLength:"200"`
	Goals     string `json:"goals" minLength:"1" maxLength:"4000"`
	StartsOn  string `json:"starts_on" format:"date"`
	ReviewOn  string `json:"review_on" format:"date" doc:"after starts_on"`
}

// BenefitDecision is social protection's decision on a benefit.
type BenefitDecision struct {
	Benefit    string `json:"benefit" minLength:"1" maxLength:"200"`
	Decision   string `json:"decision" enum:"granted,refused"`
	MonthlyKZT int    `json:"monthly_kzt,omitempty" required:"false" minimum:"0" doc:"granted only"`
	Reason     string `json:"reason,omitempty" required:"false" maxLength:"4000"`
}

// Placement is a stay in a shelter: a bed, from today, for at most six
// months. Its address is confidential: it goes only to the agency that
// referred the family, in the accepted event addressed to it.
type Placement struct {
	Bed     string `json:"bed" minLength:"1" maxLength:"40"`
	Address string `json:"address,omitempty" required:"true" minLength:"1" maxLength:"400" doc:"Confidential: shown only to this agency and the one that referred the family; it travels sealed to that agency alone."`
	// SealedAddress is the address on the wire, sealed to the recipient.
	SealedAddress string `json:"sealed_address,omitempty" required:"false" doc:"Set by the bus, never by a caller: the address sealed to the recipient, when it could not be opened."`
	StartsOn      string `json:"starts_on,omitempty" required:"false" format:"date" doc:"Today, if left out."`
	EndsOn        string `json:"ends_on" format:"date" doc:"At most six months after starts_on."`
}

// maxStayMonths is the longest stay in a shelter.
const maxStayMonths = 6

// categories are the data categories the work records in w share.
func (w *Work) categories() []string {
	if w == nil {
		return nil
	}
	var c []string
	if w.Screening != nil {
		c = append(c, CategoryHealth)
	}
	if w.Assessment != nil || w.LearningPlan != nil {
		c = append(c, CategoryEducation)
	}
	if w.BenefitDecision != nil {
		c = append(c, CategorySocial)
	}
	if w.Placement != nil {
		c = append(c, CategoryShelter)
	}
	return c
}

// check says what is wrong with w as work of agency self: each agency
// records only its own kind. Returns ErrInvalid.
func (w *Work) check(self string) error {
	own := map[string]bool{
		"health":    w.Screening != nil,
		"education": w.Assessment != nil || w.LearningPlan != nil,
		"social":    w.BenefitDecision != nil,
		"ngo":       w.Placement != nil,
	}
	for a, has := range own {
		if has && a != self {
			return fmt.Errorf("%w: work: only %s records that kind of work, not %s", ErrInvalid, a, self)
		}
	}
	if w.LearningPlan != nil && w.Assessment == nil {
		return fmt.Errorf("%w: work: a learning plan is opened from an assessment: give both", ErrInvalid)
	}
	if b := w.BenefitDecision; b != nil && b.Decision != "granted" && b.MonthlyKZT != 0 {
		return fmt.Errorf("%w: work: a refused benefit has no monthly amount", ErrInvalid)
	}
	return nil
}

func parseDate(field, s string) (time.Time, error) {
	t, err := time.Parse(time.DateOnly, s)
	if err != nil {
		return t, fmt.Errorf("%w: %s %q is not a date (YYYY-MM-DD)", ErrInvalid, field, s)
	}
	return t, nil
}

func pgDate(t time.Time) pgtype.Date { return pgtype.Date{Time: t, Valid: true} }

// recordWork keeps this agency's work on referral r in its tables, in the
// caller's transaction, and on the referral as it is sent. A placement
// takes a bed of the referral's service.
func (s *Service) recordWork(ctx context.Context, q *db.Queries, r db.Referral, w *Work) error {
	if w == nil {
		return nil
	}
	if err := w.check(s.self); err != nil {
		return err
	}
	ref := &r.ID
	if sc := w.Screening; sc != nil {
		if err := q.ScreeningInsert(ctx, db.ScreeningInsertParams{ID: uuid.Must(uuid.NewV7()), ReferralID: ref, CaseID: r.CaseID, Kind: sc.Kind, Result: sc.Result, Findings: sc.Findings}); err != nil {
			return fmt.Errorf("record screening: %w", err)
		}
	}
	if a := w.Assessment; a != nil {
		id := uuid.Must(uuid.NewV7())
		if err := q.AssessmentInsert(ctx, db.AssessmentInsertParams{ID: id, ReferralID: ref, CaseID: r.CaseID, Conclusion: a.Conclusion, NeedsSupport: a.NeedsSupport}); err != nil {
			return fmt.Errorf("record assessment: %w", err)
		}
		if p := w.LearningPlan; p != nil {
			start, err := parseDate("learning_plan.starts_on", p.StartsOn)
			if err != nil {
				return err
			}
			review, err := parseDate("learning_plan.review_on", p.ReviewOn)
			if err != nil {
				return err
			}
			if !review.After(start) {
				return fmt.Errorf("%w: learning_plan.review_on must come after starts_on", ErrInvalid)
			}
			if err := q.LearningPlanInsert(ctx, db.LearningPlanInsertParams{
				ID: uuid.Must(uuid.NewV7()), AssessmentID: id, ReferralID: ref, CaseID: r.CaseID, Programme: p.Programme, Goals: p.Goals,
				StartsOn: pgDate(start), ReviewOn: pgDate(review),
			}); err != nil {
				return fmt.Errorf("record learning plan: %w", err)
			}
		}
	}
	if b := w.BenefitDecision; b != nil {
		if err := q.BenefitDecisionInsert(ctx, db.BenefitDecisionInsertParams{
			ID: uuid.Must(uuid.NewV7()), ReferralID: ref, CaseID: r.CaseID, Benefit: b.Benefit, Decision: b.Decision, MonthlyKzt: int32(b.MonthlyKZT), Reason: b.Reason,
		}); err != nil {
			return fmt.Errorf("record benefit decision: %w", err)
		}
	}
	if p := w.Placement; p != nil {
		p.SealedAddress = ""
		if err := s.place(ctx, q, r, p); err != nil {
			return err
		}
	}
	b, err := json.Marshal(w)
	if err != nil {
		return err
	}
	return q.ReferralSetWork(ctx, db.ReferralSetWorkParams{ID: r.ID, Work: b})
}

// place checks a placement, takes a bed and records the stay. Returns
// ErrInvalid for a stay that is too long or a service that takes no one
// in, ErrConflict when no bed is free or the bed is taken.
func (s *Service) place(ctx context.Context, q *db.Queries, r db.Referral, p *Placement) error {
	if r.ToAgency != s.self {
		return fmt.Errorf("%w: a placement is made by the shelter that received the referral", ErrInvalid)
	}
	if o, ok := s.offer(r.Service); !ok || o.Beds == 0 {
		return fmt.Errorf("%w: %s takes no one in: a placement needs a shelter service", ErrInvalid, r.Service)
	}
	today := s.cfg.Now().UTC().Truncate(24 * time.Hour)
	start := today
	if p.StartsOn != "" {
		var err error
		if start, err = parseDate("placement.starts_on", p.StartsOn); err != nil {
			return err
		}
	}
	end, err := parseDate("placement.ends_on", p.EndsOn)
	if err != nil {
		return err
	}
	switch {
	case start.Before(today.AddDate(0, 0, -1)):
		return fmt.Errorf("%w: placement.starts_on %s is in the past", ErrInvalid, p.StartsOn)
	case !end.After(start):
		return fmt.Errorf("%w: placement.ends_on must come after starts_on", ErrInvalid)
	case end.After(start.AddDate(0, maxStayMonths, 0)):
		return fmt.Errorf("%w: placement.ends_on %s: a stay lasts at most %d months, until %s", ErrInvalid, p.EndsOn, maxStayMonths, start.AddDate(0, maxStayMonths, 0).Format(time.DateOnly))
	}
	p.StartsOn = start.Format(time.DateOnly)
	if _, err := q.CapacityTake(ctx, r.Service); errors.Is(err, pgx.ErrNoRows) {
		return fmt.Errorf("%w: no free bed in %s: decline with reason_code no_capacity", ErrConflict, r.Service)
	} else if err != nil {
		return fmt.Errorf("take a bed: %w", err)
	}
	err = q.PlacementInsert(ctx, db.PlacementInsertParams{
		ID: uuid.Must(uuid.NewV7()), ReferralID: r.ID, CaseID: r.CaseID, Service: r.Service, Bed: p.Bed, Address: p.Address,
		StartsOn: pgDate(start), EndsOn: pgDate(end),
	})
	var pg *pgconn.PgError
	if errors.As(err, &pg) && pg.Code == "23505" {
		return fmt.Errorf("%w: bed %s of %s is taken", ErrConflict, p.Bed, r.Service)
	}
	if err != nil {
		return fmt.Errorf("record placement: %w", err)
	}
	return nil
}

// endStay frees the bed of a referral this agency received once the
// referral ends: the stay is over.
func (s *Service) endStay(ctx context.Context, q *db.Queries, r db.Referral, next referral.State) error {
	if r.ToAgency != s.self || !next.Terminal() {
		return nil
	}
	service, err := q.PlacementEnd(ctx, r.ID)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("end stay: %w", err)
	}
	return q.CapacityFree(ctx, service)
}

// needsPlacement reports whether accepting r takes a bed here.
func (s *Service) needsPlacement(r db.Referral) bool {
	o, ok := s.offer(r.Service)
	return ok && o.Beds > 0 && r.ToAgency == s.self
}

// full reports whether service takes people in and has no free bed.
func full(ctx context.Context, q *db.Queries, service string) (bool, error) {
	c, err := q.CapacityGet(ctx, service)
	if errors.Is(err, pgx.ErrNoRows) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("read capacity: %w", err)
	}
	return c.Used >= c.Beds, nil
}

// workFromDB decodes the work a referral's events carried.
func workFromDB(b []byte) *Work {
	if len(b) == 0 {
		return nil
	}
	var w Work
	if json.Unmarshal(b, &w) != nil {
		return nil
	}
	return &w
}

// noCapacityReason is the reason of an automatic decline.
func noCapacityReason(service string) string {
	return "no free bed in " + strings.ReplaceAll(service, "_", " ") + " now: refer the family to another shelter"
}
