package core_test

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/refbus/refbus/pkg/referral"
	"github.com/refbus/refbus/services/internal/core/app"
	"github.com/refbus/refbus/services/internal/core/nodetest"
)

// The inbox's and the sent page's counts by status (kept, not counted on
// each view: migration 00006) equal a plain count of the referrals while
// many moves run at once at both ends, and after the changes are folded;
// a filtered page finds every referral its counts promise.
func TestListCountsStayExact(t *testing.T) {
	t.Parallel()
	n := nodetest.New(t)
	n.Start("shelter", plain(familySupport), nil)
	n.Start("school", plain(schoolTransfer), nil)
	ctx := context.Background()
	ids := sendMany(t, n, "school", "shelter", "family_support", 60)
	nodetest.Eventually(t, time.Minute, allStatus(n, "shelter", ids, "received"))
	nodetest.Eventually(t, time.Minute, allStatus(n, "school", ids, "received"))
	wantCounts(t, n, "shelter", app.Incoming, "received by the shelter")
	wantCounts(t, n, "school", app.Outgoing, "received by the shelter")

	// Each referral takes one of these ways, all at once, twelve at a
	// time; the school cancels some; some become overdue.
	ways := [][]referral.Move{
		{referral.Accept, referral.Start, referral.Complete},
		{referral.Decline},
		{referral.Accept, referral.Start, referral.Hold},
		{referral.Accept, referral.Fail},
		{referral.Cancel},
		{},
	}
	input := app.MoveInput{ReasonCode: "not_eligible", Reason: "a reason", Outcome: "an outcome"}
	shelterDB := connect(t, n, "shelter")
	var wg sync.WaitGroup
	errs := make(chan error, len(ids))
	work := make(chan int)
	for range 12 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range work {
				way := ways[i%len(ways)]
				for _, mv := range way {
					at := "shelter"
					if mv == referral.Cancel {
						at = "school"
					}
					if _, err := n.App(at).Move(ctx, ids[i], mv, input); err != nil {
						errs <- fmt.Errorf("%s %s: %w", mv, ids[i], err)
						return
					}
				}
				if i%7 == 0 { // as a deadline that passed marks it
					if _, err := shelterDB.Exec(ctx, "UPDATE core.referral SET overdue_at = coalesce(overdue_at, now()) WHERE id = $1", ids[i]); err != nil {
						errs <- err
						return
					}
				}
			}
		}()
	}
	for i := range ids {
		work <- i
	}
	close(work)
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	// The other end's moves arrive over the bus: wait until both agree.
	nodetest.Eventually(t, time.Minute, func() error {
		for _, id := range ids {
			a, _ := n.Referral("shelter", id)
			b, _ := n.Referral("school", id)
			if a.Status != b.Status {
				return fmt.Errorf("%s is %s at the shelter, %s at the school", id, a.Status, b.Status)
			}
		}
		return nil
	})
	wantCounts(t, n, "shelter", app.Incoming, "after the moves")
	wantCounts(t, n, "school", app.Outgoing, "after the moves")

	for _, name := range []string{"shelter", "school"} {
		if _, err := n.App(name).FoldCounts(ctx); err != nil {
			t.Fatal(err)
		}
	}
	var left int
	if err := shelterDB.QueryRow(ctx, "SELECT count(*) FROM core.referral_count_delta").Scan(&left); err != nil || left != 0 {
		t.Fatalf("after the fold %d changes are left (%v)", left, err)
	}
	wantCounts(t, n, "shelter", app.Incoming, "after the fold")
	wantCounts(t, n, "school", app.Outgoing, "after the fold")

	// A page of a status, or of the overdue ones, finds them all.
	for _, f := range []app.Filter{{Status: "completed"}, {Status: "on_hold"}, {OverdueOnly: true}, {Status: "received", OverdueOnly: true}} {
		f.Limit = 1000
		page, err := n.App("shelter").ListPage(ctx, app.Incoming, f)
		if err != nil {
			t.Fatal(err)
		}
		var want int
		if err := shelterDB.QueryRow(ctx, `SELECT count(*) FROM core.referral WHERE to_agency = 'shelter'
			AND ($1 = '' OR status = $1) AND (NOT $2 OR overdue_at IS NOT NULL)`, f.Status, f.OverdueOnly).Scan(&want); err != nil {
			t.Fatal(err)
		}
		if len(page.Referrals) != want || want == 0 {
			t.Errorf("the inbox page of %+v lists %d referrals; the store holds %d", f, len(page.Referrals), want)
		}
	}
}

// wantCounts checks that the counts node's list page shows, for the whole
// node and for its organization, are a plain count of its referrals.
func wantCounts(t *testing.T, n *nodetest.Network, node, list, when string) {
	t.Helper()
	ctx := context.Background()
	end := "to"
	if list == app.Outgoing {
		end = "from"
	}
	rows, err := connect(t, n, node).Query(ctx, fmt.Sprintf(`SELECT status, count(*), count(overdue_at) FROM core.referral
		WHERE %s_agency = $1 GROUP BY status ORDER BY status`, end), node)
	if err != nil {
		t.Fatal(err)
	}
	want, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (app.Count, error) {
		var c app.Count
		return c, r.Scan(&c.Status, &c.N, &c.Overdue)
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, ctx := range []context.Context{ctx, app.WithOrg(ctx, node)} {
		page, err := n.App(node).ListPage(ctx, list, app.Filter{Limit: 1})
		if err != nil {
			t.Fatal(err)
		}
		got := slices.Clone(page.Counts)
		slices.SortFunc(got, func(a, b app.Count) int { return strings.Compare(a.Status, b.Status) })
		if !slices.Equal(got, want) {
			t.Errorf("%s: %s's %s page counts %v; the store holds %v", when, node, list, got, want)
		}
	}
}

// connect opens a pool on node's store, closed at the end of the test.
func connect(t *testing.T, n *nodetest.Network, node string) *pgxpool.Pool {
	t.Helper()
	p, err := pgxpool.New(context.Background(), n.DB(node))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(p.Close)
	return p
}
