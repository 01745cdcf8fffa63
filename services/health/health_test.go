package health_test

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/refbus/refbus/pkg/pgtest"
	"github.com/refbus/refbus/schemas"
	"github.com/refbus/refbus/services/education"
	"github.com/refbus/refbus/services/health"
	"github.com/refbus/refbus/services/internal/core/app"
	"github.com/refbus/refbus/services/internal/core/nodetest"
	"github.com/refbus/refbus/services/social"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

// A screening a polyclinic sends with its referral is kept in its own
// table and reaches the node the child is referred to; one it makes when
// it completes a referral it received is kept and told to the sender. It
// travels only under the family's consent to share health data.
func TestScreeningRecordedAndCarried(t *testing.T) {
	t.Parallel()
	n := nodetest.New(t)
	n.Start("polyclinic", health.New(), nil)
	n.Start("pmpk", education.New(), nil)
	n.Start("family_centre", social.New(), nil)

	r := n.Refer("polyclinic", "pmpk", "early_intervention_assessment", "",
		`"work":{"screening":{"kind":"development_2y","result":"concern","findings":"no two-word phrases"}}`)
	n.Both(r, "received")
	got, err := n.Referral("pmpk", r.ID)
	if err != nil || got.Work == nil || got.Work.Screening == nil || *got.Work.Screening != (schemas.Screening{Kind: "development_2y", Result: "concern", Findings: "no two-word phrases"}) {
		t.Fatalf("pmpk did not get the polyclinic's screening: %+v %v", got.Work, err)
	}
	n.WantRows("polyclinic", "health.screening", 1, r.ID.String(), r.CaseID.String(), "development_2y", "concern", "no two-word phrases")

	// A check the family support centre asked for, done and told back.
	c := n.Refer("family_centre", "polyclinic", "child_health_check", "", "")
	n.Both(c, "received")
	n.Move("polyclinic", c.ID, "accept", ``)
	n.Move("polyclinic", c.ID, "start", ``)
	n.Move("polyclinic", c.ID, "complete", `{"outcome":"check done; nutrition support arranged",
		"work":{"screening":{"kind":"pediatric","result":"urgent","findings":"underweight for age"}}}`)
	n.Both(c, "completed")
	nodetest.Eventually(t, 10*time.Second, func() error {
		got, err := n.Referral("family_centre", c.ID)
		if err != nil || got.Work == nil || got.Work.Screening == nil || got.Work.Screening.Findings != "underweight for age" {
			return fmt.Errorf("the family support centre does not see the screening: %+v %v", got.Work, err)
		}
		return nil
	})
	n.WantRows("polyclinic", "health.screening", 2, c.ID.String(), c.CaseID.String(), "pediatric", "urgent", "underweight for age")

	// Consent to share only the summary does not cover a screening.
	narrow, err := n.App("polyclinic").RecordConsent(t.Context(), app.NewConsent{GivenBy: "mother", ToOrg: "pmpk", Purpose: "assessment",
		DataCategories: []string{schemas.CategorySummary}, ExpiresAt: time.Now().Add(time.Hour)})
	if err != nil {
		t.Fatal(err)
	}
	n.Refused("polyclinic", "POST", "/api/v1/referrals", fmt.Sprintf(
		`{"to_org":"pmpk","service":"school_transfer","note":"n","consent_id":%q,"work":{"screening":{"kind":"k","result":"normal"}}}`, narrow.ID),
		422, `"health"`)
	n.WantRows("polyclinic", "health.screening", 2) // the refused referral's screening was not kept
	if sent, err := n.App("polyclinic").Sent(t.Context(), "", 10); err != nil || len(sent) != 1 {
		t.Fatalf("the polyclinic sent %d referrals, want 1 (%v)", len(sent), err)
	}
}

// A health node's store holds the bus's tables, the core's and health's,
// nothing else; and it records screenings, no other kind's work.
func TestStoreAndRecordsAreHealths(t *testing.T) {
	t.Parallel()
	n := nodetest.New(t)
	n.Start("polyclinic", health.New(), nil)
	n.Start("family_centre", social.New(), nil)
	r := n.Refer("family_centre", "polyclinic", "child_health_check", "", "")
	n.Both(r, "received")
	n.Move("polyclinic", r.ID, "accept", ``)
	n.Move("polyclinic", r.ID, "start", ``)

	n.WantTables("polyclinic", "health.goose_db_version", "health.screening")
	n.WantOwnWorkOnly("polyclinic", "health", []string{"screening"}, r.ID, "family_centre", "family_support")
}

// Erasing a person empties what the kinds' own records say of them, at
// both nodes: the polyclinic's screening findings once the assessment
// centre erases the child, and the centre's conclusion and plan; that
// the records were made stays.
func TestErasureEmptiesWorkRecords(t *testing.T) {
	t.Parallel()
	const findings, conclusion, goals = "no two-word phrases at two", "speech delay; autism to be ruled out", "joint attention and two-word phrases"
	n := nodetest.New(t)
	n.Start("polyclinic", health.New(), nil)
	n.Start("pmpk", education.New(), nil)
	r := n.Refer("polyclinic", "pmpk", "early_intervention_assessment", "",
		`"person_id":"880101300123","work":{"screening":{"kind":"development_2y","result":"concern","findings":"`+findings+`"}}`)
	n.Both(r, "received")
	n.Move("pmpk", r.ID, "accept", ``)
	n.Move("pmpk", r.ID, "start", ``)
	n.Move("pmpk", r.ID, "complete", fmt.Sprintf(`{"outcome":"assessed","work":{"assessment":{"conclusion":%q,"needs_support":true},
		"learning_plan":{"programme":"speech therapy","goals":%q,"starts_on":%q,"review_on":%q}}}`, conclusion, goals, nodetest.Date(0), nodetest.Date(3)))
	n.Both(r, "completed")
	n.WantRows("polyclinic", "health.screening", 1, findings)
	n.WantRows("pmpk", "education.assessment", 1, conclusion)
	n.WantRows("pmpk", "education.learning_plan", 1, goals)

	if status, body, _ := n.Do("pmpk", "POST", "/api/v1/people/erase", `{"person_id":"880101300123","reason":"the parents asked"}`); status != 200 {
		t.Fatalf("erase: %d %s", status, body)
	}
	nodetest.Eventually(t, 30*time.Second, func() error {
		for node, secrets := range map[string][]string{"polyclinic": {findings, conclusion, goals}, "pmpk": {findings, conclusion, goals}} {
			s := n.StoreText(node)
			for _, secret := range secrets {
				if strings.Contains(s, secret) {
					return fmt.Errorf("%s's store still holds %q", node, secret)
				}
			}
		}
		return nil
	})
	n.WantRows("polyclinic", "health.screening", 1, "development_2y", "concern")
	n.WantRows("pmpk", "education.assessment", 1, r.ID.String())
}
