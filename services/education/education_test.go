package education_test

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/refbus/refbus/pkg/pgtest"
	"github.com/refbus/refbus/schemas"
	"github.com/refbus/refbus/services/education"
	"github.com/refbus/refbus/services/health"
	"github.com/refbus/refbus/services/internal/core/nodetest"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

// An assessment and the learning plan opened from it are kept in the
// education node's own tables, the plan tied to its assessment, and told
// to the node that referred the child, which keeps its own screening
// beside them.
func TestAssessmentAndPlanRecordedAndCarried(t *testing.T) {
	t.Parallel()
	n := nodetest.New(t)
	n.Start("polyclinic", health.New(), nil)
	n.Start("pmpk", education.New(), nil)
	r := n.Refer("polyclinic", "pmpk", "early_intervention_assessment", "",
		`"work":{"screening":{"kind":"development_2y","result":"concern","findings":"no two-word phrases"}}`)
	n.Both(r, "received")
	n.Move("pmpk", r.ID, "accept", ``)
	n.Move("pmpk", r.ID, "start", ``)
	n.Move("pmpk", r.ID, "complete", fmt.Sprintf(`{"outcome":"assessed; individual learning plan opened","work":{
		"assessment":{"conclusion":"speech and communication delay","needs_support":true},
		"learning_plan":{"programme":"early intervention","goals":"two-word phrases","starts_on":%q,"review_on":%q}}}`,
		nodetest.Date(0), nodetest.Date(3)))
	n.Both(r, "completed")

	assessment := n.WantRows("pmpk", "education.assessment", 1, r.ID.String(), r.CaseID.String(), "speech and communication delay", ",t,")[0]
	// The plan names its assessment: the row's first column.
	assessmentID, _, _ := strings.Cut(strings.TrimPrefix(assessment, "("), ",")
	n.WantRows("pmpk", "education.learning_plan", 1, ","+assessmentID+","+r.ID.String()+","+r.CaseID.String()+",",
		"early intervention", "two-word phrases", nodetest.Date(0), nodetest.Date(3))
	nodetest.Eventually(t, 10*time.Second, func() error {
		got, err := n.Referral("polyclinic", r.ID)
		if err != nil || got.Work == nil {
			return fmt.Errorf("the polyclinic's referral has no work: %+v %v", got, err)
		}
		w := got.Work
		if w.Assessment == nil || *w.Assessment != (schemas.Assessment{Conclusion: "speech and communication delay", NeedsSupport: true}) ||
			w.LearningPlan == nil || w.LearningPlan.ReviewOn != nodetest.Date(3) || w.Screening == nil || w.Screening.Result != "concern" {
			return fmt.Errorf("the polyclinic's referral lacks the work of both sides: %+v", w)
		}
		return nil
	})
}

// A learning plan is opened from an assessment, and reviewed after it
// starts; work is told with accept or complete; what is refused writes
// nothing.
func TestLearningPlanRefusals(t *testing.T) {
	t.Parallel()
	n := nodetest.New(t)
	n.Start("polyclinic", health.New(), nil)
	n.Start("pmpk", education.New(), nil)
	r := n.Refer("polyclinic", "pmpk", "early_intervention_assessment", "", "")
	n.Both(r, "received")
	n.Move("pmpk", r.ID, "accept", ``)
	n.Move("pmpk", r.ID, "start", ``)
	for _, c := range []struct{ move, body, want string }{
		{"complete", `{"outcome":"x","work":{"learning_plan":{"programme":"p","goals":"g","starts_on":"2026-12-01","review_on":"2027-03-01"}}}`, "a learning plan is opened from an assessment"},
		{"complete", `{"outcome":"x","work":{"assessment":{"conclusion":"c","needs_support":true},"learning_plan":{"programme":"p","goals":"g","starts_on":"2026-12-01","review_on":"2026-11-01"}}}`, "learning_plan.review_on must come after starts_on"},
		{"complete", `{"outcome":"x","work":{"assessment":{"conclusion":"c","needs_support":true},"learning_plan":{"programme":"p","goals":"g","starts_on":"2026-12-01","review_on":"2026-12-01"}}}`, "learning_plan.review_on must come after starts_on"},
		{"hold", `{"reason":"x","work":{"assessment":{"conclusion":"c","needs_support":true}}}`, "work is told with accept (a placement) or complete, not with hold"},
		{"complete", `{"outcome":"x","work":{"assessment":{"conclusion":"c","needs_support":"yes"}}}`, "needs_support"},
	} {
		n.Refused("pmpk", "POST", "/api/v1/referrals/"+r.ID.String()+"/"+c.move, c.body, 422, c.want)
	}
	if got, _ := n.Referral("pmpk", r.ID); got.Status != "in_progress" || got.Work != nil {
		t.Fatalf("a refused move was written: %+v", got)
	}
	n.WantRows("pmpk", "education.assessment", 0)
	n.WantRows("pmpk", "education.learning_plan", 0)
	// An assessment alone needs no plan.
	n.Move("pmpk", r.ID, "complete", `{"outcome":"no delay found","work":{"assessment":{"conclusion":"development within the norm","needs_support":false}}}`)
	n.WantRows("pmpk", "education.assessment", 1, "development within the norm", ",f,")
	n.WantRows("pmpk", "education.learning_plan", 0)
}

// An education node's store holds the bus's tables, the core's and
// education's, nothing else; and it records assessments and learning
// plans, no other kind's work.
func TestStoreAndRecordsAreEducations(t *testing.T) {
	t.Parallel()
	n := nodetest.New(t)
	n.Start("polyclinic", health.New(), nil)
	n.Start("pmpk", education.New(), nil)
	r := n.Refer("polyclinic", "pmpk", "school_transfer", "", "")
	n.Both(r, "received")
	n.Move("pmpk", r.ID, "accept", ``)
	n.Move("pmpk", r.ID, "start", ``)

	n.WantTables("pmpk", "education.assessment", "education.goose_db_version", "education.learning_plan")
	n.WantOwnWorkOnly("pmpk", "education", []string{"assessment", "learning_plan"}, r.ID, "polyclinic", "child_health_check")
}
