package scenario_test

import (
	"fmt"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/refbus/refbus/services/internal/core"
	"github.com/refbus/refbus/services/internal/core/app"
	"github.com/refbus/refbus/services/internal/core/nodetest"
)

// clock is a test clock the deadlines read.
type clock struct{ offset atomic.Int64 }

func (c *clock) now() time.Time          { return time.Now().Add(time.Duration(c.offset.Load())) }
func (c *clock) advance(d time.Duration) { c.offset.Add(int64(d)) }

// The kinds' own deadlines: a crisis shelter must accept within two hours
// and a stay ends within six months; an early-intervention assessment must
// be accepted within ten days. A referral that misses one is reported
// overdue to its receiver and escalated to the coordinator (social), once;
// one accepted in time is not.
func TestScenarioDeadlinesEscalate(t *testing.T) {
	t.Parallel()
	var clk clock
	n := network(t, kz, map[string]func(*core.Config){"": func(c *core.Config) {
		c.Now = clk.now
		c.SLATick = time.Hour // the test fires the deadlines itself
	}})
	late := n.Refer("education", "kz-zhan-saya", "crisis_shelter", "", "")
	onTime := n.Refer("education", "kz-zhan-saya", "crisis_shelter", "", "")
	assessment := n.Refer("health", "kz-almaty-pmpk", "early_intervention_assessment", "", "")
	for _, r := range []app.Referral{late, onTime, assessment} {
		n.Both(r, "received")
	}
	n.Move("ngo", onTime.ID, "accept", nodetest.Placement("A-1"))
	n.Both(onTime, "accepted")

	// fire fires the due deadlines of every node, and returns how many
	// each fired.
	fire := func() map[string]int {
		t.Helper()
		out := map[string]int{}
		for _, name := range []string{"health", "education", "social", "ngo"} {
			k, err := n.App(name).FireDueTimers(t.Context())
			if err != nil {
				t.Fatal(err)
			}
			if k > 0 {
				out[name] = k
			}
		}
		return out
	}
	// escalated waits until the coordinator has exactly the escalations
	// want, as referral:kind:from.
	escalated := func(want ...string) {
		t.Helper()
		nodetest.Eventually(t, 10*time.Second, func() error {
			es, err := n.App("social").Escalations(t.Context(), 10)
			var got []string
			for _, e := range es {
				got = append(got, e.ReferralID.String()+":"+e.Kind+":"+e.FromAgency)
			}
			slices.Sort(got)
			slices.Sort(want)
			if err != nil || !slices.Equal(got, want) {
				return fmt.Errorf("social's escalations %v, want %v (%v)", got, want, err)
			}
			return nil
		})
	}
	esc := func(id uuid.UUID, kind, from string) string { return id.String() + ":" + kind + ":" + from }
	overdue := func(name string, id uuid.UUID, want bool) func() error {
		return func() error {
			r, err := n.Referral(name, id)
			if err == nil && r.Overdue != want {
				err = fmt.Errorf("%s sees referral %s overdue=%v, want %v", name, id, r.Overdue, want)
			}
			return err
		}
	}

	clk.advance(time.Hour)
	if got := fire(); len(got) != 0 {
		t.Fatalf("deadlines fired after one hour: %v", got)
	}
	clk.advance(90 * time.Minute)
	if got := fire(); len(got) != 1 || got["education"] != 1 {
		t.Fatalf("deadlines fired after 2.5 hours: %v, want education's unaccepted shelter referral", got)
	}
	if got := fire(); len(got) != 0 {
		t.Fatalf("a deadline fired twice: %v", got)
	}
	nodetest.Eventually(t, 10*time.Second, overdue("ngo", late.ID, true))
	escalated(esc(late.ID, "accept", "education"))
	// The coordinator sees which organizations it is about.
	if es, err := n.App("social").Escalations(t.Context(), 10); err != nil || es[0].FromOrg != "kz-almaty-pmpk" || es[0].ToOrg != "kz-zhan-saya" {
		t.Fatalf("social's escalation: %+v (%v), want from kz-almaty-pmpk to kz-zhan-saya", es, err)
	}
	for _, c := range []struct {
		node string
		id   uuid.UUID
		want bool
	}{{"education", late.ID, true}, {"ngo", onTime.ID, false}, {"education", onTime.ID, false}, {"education", assessment.ID, false}} {
		if err := overdue(c.node, c.id, c.want)(); err != nil {
			t.Fatal(err)
		}
	}

	// Ten days on, the assessment waits too long.
	clk.advance(10 * 24 * time.Hour)
	if got := fire(); len(got) != 1 || got["health"] != 1 {
		t.Fatalf("deadlines fired after ten days: %v, want health's unaccepted assessment", got)
	}
	nodetest.Eventually(t, 10*time.Second, overdue("education", assessment.ID, true))
	escalated(esc(late.ID, "accept", "education"), esc(assessment.ID, "accept", "health"))

	// Accepted, the shelter's stay must end within six months.
	clk.advance(200 * 24 * time.Hour)
	if got := fire(); len(got) != 1 || got["education"] != 1 {
		t.Fatalf("deadlines fired after 200 days: %v, want the completion of the accepted stay", got)
	}
	nodetest.Eventually(t, 10*time.Second, overdue("ngo", onTime.ID, true))
	escalated(esc(late.ID, "accept", "education"), esc(assessment.ID, "accept", "health"), esc(onTime.ID, "complete", "education"))
}
