package agency_test

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/refbus/refbus/services/internal/agency"
)

// clock is a test clock the deadlines read.
type clock struct{ offset atomic.Int64 }

func (c *clock) now() time.Time          { return time.Now().Add(time.Duration(c.offset.Load())) }
func (c *clock) advance(d time.Duration) { c.offset.Add(int64(d)) }

// A crisis shelter referral not accepted within two hours is reported
// overdue to the shelter and escalated to the coordinator (social), once,
// even across a restart; one accepted in time is not.
func TestSLAOverdueEscalatesOnce(t *testing.T) {
	t.Parallel()
	var clk clock
	tune := func(c *agency.Config) {
		c.Now = clk.now
		c.SLATick = time.Hour // the test fires timers itself
	}
	n := newNetwork(t) // the bus only: the agencies start on the test clock
	for _, a := range []string{"education", "ngo", "social"} {
		n.urls[a] = newDB(t)
		n.start(a, tune)
	}
	ctx := context.Background()
	late := n.refer("education", "ngo", "crisis_shelter", "")
	onTime := n.refer("education", "ngo", "crisis_shelter", "")
	n.both(late, "received")
	n.both(onTime, "received")
	n.move("ngo", onTime.ID, "accept", placement("A-1"))
	n.both(onTime, "accepted")

	fire := func() int {
		t.Helper()
		k, err := n.svc("education").svc.FireDueTimers(ctx)
		if err != nil {
			t.Fatal(err)
		}
		return k
	}
	clk.advance(time.Hour)
	if k := fire(); k != 0 {
		t.Fatalf("%d deadlines fired after one hour, want 0", k)
	}
	clk.advance(90 * time.Minute)
	if k := fire(); k != 1 {
		t.Fatalf("%d deadlines fired after 2.5 hours, want 1 (the unaccepted referral)", k)
	}
	if k := fire(); k != 0 {
		t.Fatalf("a deadline fired twice")
	}
	// Restarted, the store still knows the deadline fired.
	_ = n.svc("education").stop()
	n.start("education", tune)
	if k := fire(); k != 0 {
		t.Fatalf("a deadline fired again after a restart")
	}

	eventually(t, 10*time.Second, func() error {
		r, err := n.referralStatus("ngo", late.ID.String())
		if err != nil || !r.Overdue {
			return fmt.Errorf("ngo does not see the referral overdue: %+v %v", r, err)
		}
		es, err := n.svc("social").svc.Escalations(ctx, 10)
		if err != nil || len(es) != 1 || es[0].ReferralID != late.ID || es[0].Kind != "accept" || es[0].FromAgency != "education" {
			return fmt.Errorf("social's escalations: %+v %v", es, err)
		}
		return nil
	})
	if r, _ := n.referralStatus("education", late.ID.String()); !r.Overdue {
		t.Fatal("the sender does not see its referral overdue")
	}
	if r, _ := n.referralStatus("ngo", onTime.ID.String()); r.Overdue {
		t.Fatal("the referral accepted in time is overdue")
	}
	// Accepted, the completion clock of a crisis shelter (six months) runs.
	clk.advance(200 * 24 * time.Hour)
	if k := fire(); k != 1 {
		t.Fatalf("%d deadlines fired after 200 days, want 1 (completion of the accepted one)", k)
	}
}
