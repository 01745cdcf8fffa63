package social_test

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/refbus/refbus/pkg/pgtest"
	"github.com/refbus/refbus/schemas"
	"github.com/refbus/refbus/services/education"
	"github.com/refbus/refbus/services/internal/core/nodetest"
	"github.com/refbus/refbus/services/social"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

// A benefit decision is kept in the social node's own table and told to
// the node that referred the family.
func TestBenefitDecisionRecordedAndCarried(t *testing.T) {
	t.Parallel()
	n := nodetest.New(t)
	n.Start("pmpk", education.New(), nil)
	n.Start("family_centre", social.New(), nil)
	r := n.Refer("pmpk", "family_centre", "disability_support", "", "")
	n.Both(r, "received")
	n.Move("family_centre", r.ID, "accept", ``)
	n.Move("family_centre", r.ID, "start", ``)
	n.Move("family_centre", r.ID, "complete", `{"outcome":"disability benefit granted; social rehabilitation plan agreed",
		"work":{"benefit_decision":{"benefit":"child_disability_allowance","decision":"granted","monthly_kzt":52000}}}`)
	n.Both(r, "completed")
	n.WantRows("family_centre", "social.benefit_decision", 1, r.ID.String(), r.CaseID.String(), "child_disability_allowance", "granted", ",52000,")
	want := schemas.BenefitDecision{Benefit: "child_disability_allowance", Decision: "granted", MonthlyKZT: 52000}
	nodetest.Eventually(t, 10*time.Second, func() error {
		got, err := n.Referral("pmpk", r.ID)
		if err != nil || got.Work == nil || got.Work.BenefitDecision == nil || *got.Work.BenefitDecision != want {
			return fmt.Errorf("pmpk does not see the benefit decision: %+v %v", got.Work, err)
		}
		return nil
	})
}

// A refused benefit has no monthly amount, whether it is told on
// completion or sent with a referral; a refusal writes nothing.
func TestRefusedBenefitHasNoAmount(t *testing.T) {
	t.Parallel()
	n := nodetest.New(t)
	n.Start("pmpk", education.New(), nil)
	n.Start("family_centre", social.New(), nil)
	r := n.Refer("pmpk", "family_centre", "benefits_and_housing", "", "")
	n.Both(r, "received")
	n.Move("family_centre", r.ID, "accept", ``)
	n.Move("family_centre", r.ID, "start", ``)
	refused := `"work":{"benefit_decision":{"benefit":"housing_allowance","decision":"refused","monthly_kzt":100,"reason":"income above the threshold"}}`
	n.Refused("family_centre", "POST", "/api/v1/referrals/"+r.ID.String()+"/complete", `{"outcome":"refused",`+refused+`}`,
		422, "a refused benefit has no monthly amount")
	n.Refused("family_centre", "POST", "/api/v1/referrals", n.Consented("family_centre", `{"to_org":"pmpk","service":"school_transfer","note":"n",`+refused+`}`),
		422, "a refused benefit has no monthly amount")
	if got, _ := n.Referral("family_centre", r.ID); got.Status != "in_progress" || got.Work != nil {
		t.Fatalf("a refused move was written: %+v", got)
	}
	if sent, err := n.App("family_centre").Sent(t.Context(), "", 10); err != nil || len(sent) != 0 {
		t.Fatalf("a refused referral was written: %+v %v", sent, err)
	}
	n.WantRows("family_centre", "social.benefit_decision", 0)
	// Refused without an amount, it is kept and told.
	n.Move("family_centre", r.ID, "complete", `{"outcome":"refused",`+strings.Replace(refused, `"monthly_kzt":100,`, ``, 1)+`}`)
	n.Both(r, "completed")
	n.WantRows("family_centre", "social.benefit_decision", 1, "refused", ",0,", "income above the threshold")
	nodetest.Eventually(t, 10*time.Second, func() error {
		got, err := n.Referral("pmpk", r.ID)
		if err != nil || got.Work == nil || got.Work.BenefitDecision == nil || got.Work.BenefitDecision.Reason != "income above the threshold" {
			return fmt.Errorf("pmpk does not see the refusal: %+v %v", got.Work, err)
		}
		return nil
	})
}

// A social node's store holds the bus's tables, the core's and social
// protection's, nothing else; and it records benefit decisions, no other
// kind's work.
func TestStoreAndRecordsAreSocials(t *testing.T) {
	t.Parallel()
	n := nodetest.New(t)
	n.Start("pmpk", education.New(), nil)
	n.Start("family_centre", social.New(), nil)
	r := n.Refer("pmpk", "family_centre", "family_support", "", "")
	n.Both(r, "received")
	n.Move("family_centre", r.ID, "accept", ``)
	n.Move("family_centre", r.ID, "start", ``)

	n.WantTables("family_centre", "social.benefit_decision", "social.goose_db_version")
	n.WantOwnWorkOnly("family_centre", "social", []string{"benefit_decision"}, r.ID, "pmpk", "school_transfer")
}
