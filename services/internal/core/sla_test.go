package core_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/refbus/refbus/services/internal/core"
	"github.com/refbus/refbus/services/internal/core/directory"
	"github.com/refbus/refbus/services/internal/core/nodetest"
)

// A referral not accepted within the deadline the directory lists for its
// service is reported overdue to its receiver and escalated to the
// coordinator, once, even across a restart; one accepted in time is not,
// and its completion deadline runs instead. The sender's own deadline for
// a service wins over the directory's, and its default applies to a
// service the directory gives none. A coordinator that is itself the
// receiver of an overdue referral escalates it too.
func TestSLAOverdueEscalatesOnce(t *testing.T) {
	t.Parallel()
	var clk clock
	tune := func(c *core.Config) {
		c.Now = clk.now
		c.SLATick = time.Hour // the test fires timers itself
		c.Coordinator = "coordinator"
	}
	school := func(c *core.Config) {
		tune(c)
		var err error
		if c.SLAs, err = core.ParseSLAs("legal_help=5h/0,default=24h/0"); err != nil {
			t.Fatal(err)
		}
	}
	// legal_help's deadline here is the shelter's 1h, which the school's
	// own 5h overrides.
	quick := legalHelp
	quick.AcceptWithin = directory.Duration(time.Hour)
	n := nodetest.New(t)
	n.Start("shelter", plain(shelterOffers[0], quick, familySupport), tune)
	n.Start("coordinator", plain(healthCheck), tune)
	n.Start("school", plain(schoolTransfer), school)
	ctx := context.Background()
	late := n.Refer("school", "shelter", "crisis_shelter", "", "")
	onTime := n.Refer("school", "shelter", "crisis_shelter", "", "")
	legal := n.Refer("school", "shelter", "legal_help", "", "")
	family := n.Refer("school", "shelter", "family_support", "", "")
	// The coordinator is the receiver of this one.
	check := n.Refer("school", "coordinator", "child_health_check", "", "")
	for _, r := range []uuid.UUID{late.ID, onTime.ID, legal.ID, family.ID} {
		nodetest.Eventually(t, 30*time.Second, n.WantStatus("shelter", r, "received"))
	}
	n.Both(check, "received")
	n.Move("shelter", onTime.ID, "accept", ``)
	n.Both(onTime, "accepted")

	fire := func(after time.Duration, want int, what string) {
		t.Helper()
		clk.advance(after)
		k, err := n.App("school").FireDueTimers(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if k != want {
			t.Fatalf("%d deadlines fired %s, want %d", k, what, want)
		}
	}
	fire(time.Hour, 0, "after one hour (legal_help's deadline is the school's 5h, not the directory's 1h)")
	fire(90*time.Minute, 1, "after 2.5 hours (the unaccepted crisis_shelter referral)")
	fire(0, 0, "again at once")
	// Restarted, the store still knows the deadline fired.
	n.Restart("school", school)
	fire(0, 0, "after a restart")

	nodetest.Eventually(t, 30*time.Second, func() error {
		r, err := n.Referral("shelter", late.ID)
		if err != nil || !r.Overdue {
			return fmt.Errorf("the shelter does not see the referral overdue: %+v %v", r, err)
		}
		es, err := n.App("coordinator").Escalations(ctx, 10)
		if err != nil || len(es) != 1 || es[0].ReferralID != late.ID || es[0].Kind != "accept" || es[0].FromAgency != "school" || es[0].ToAgency != "shelter" || es[0].Service != "crisis_shelter" {
			return fmt.Errorf("the coordinator's escalations: %+v %v", es, err)
		}
		return nil
	})
	if r, _ := n.Referral("school", late.ID); !r.Overdue {
		t.Fatal("the sender does not see its referral overdue")
	}
	for _, r := range []uuid.UUID{onTime.ID, legal.ID, family.ID} {
		if got, _ := n.Referral("shelter", r); got.Overdue {
			t.Fatalf("referral %s (%s) is overdue after 2.5 hours", r, got.Service)
		}
	}
	fire(3*time.Hour, 1, "after 5.5 hours (legal_help, by the school's own deadline)")
	fire(19*time.Hour, 2, "after 24.5 hours (family_support and child_health_check, by the school's default)")
	// Accepted, the completion clock of a crisis shelter (six months) runs.
	fire(200*24*time.Hour, 1, "after 200 days (completion of the accepted one)")
	nodetest.Eventually(t, 30*time.Second, func() error {
		es, err := n.App("coordinator").Escalations(ctx, 10)
		if err != nil || len(es) != 5 {
			return fmt.Errorf("the coordinator's escalations: %+v %v", es, err)
		}
		kinds := map[uuid.UUID]string{}
		for _, e := range es {
			kinds[e.ReferralID] += e.Kind
		}
		if kinds[late.ID] != "accept" || kinds[legal.ID] != "accept" || kinds[family.ID] != "accept" || kinds[check.ID] != "accept" || kinds[onTime.ID] != "complete" {
			return fmt.Errorf("the coordinator's escalations by referral: %v", kinds)
		}
		return nil
	})
	nodetest.Eventually(t, 30*time.Second, func() error {
		if got, err := n.Referral("shelter", onTime.ID); err != nil || !got.Overdue {
			return fmt.Errorf("the shelter does not see the accepted referral overdue after its completion deadline: %+v %v", got, err)
		}
		if got, err := n.Referral("coordinator", check.ID); err != nil || !got.Overdue {
			return fmt.Errorf("the coordinator, its receiver, does not see its referral overdue: %+v %v", got, err)
		}
		return nil
	})
}
