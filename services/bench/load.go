package main

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/refbus/refbus/pkg/outbox"
	"github.com/refbus/refbus/services/internal/core/app"
)

// pair is one direction of referral traffic.
type pair struct{ from, to string }

// pairs are every node sending to each of the other three: referral i
// goes along pairs[i%len(pairs)], so the load is spread evenly.
var pairs = func() []pair {
	var ps []pair
	for _, from := range nodes {
		for _, to := range nodes {
			if from != to {
				ps = append(ps, pair{from, to})
			}
		}
	}
	return ps
}()

// benchNote is the note of every bench referral: the length of a real one,
// and no personal data.
const benchNote = "Bench referral: family of four, two children under five; " +
	"the mother asks for an assessment and for help with housing before winter. " +
	"Caseworker available on weekdays."

// benchService is a service each node offers that takes no bed.
var benchService = map[string]string{"health": "child_health_check", "education": "school_transfer", "social": "family_support", "ngo": "legal_help"}

func (st *stack) create(ctx context.Context, i int) error {
	p := pairs[i%len(pairs)]
	_, err := st.svcs[p.from].App().CreateReferral(ctx, app.NewReferral{ToOrg: p.to, Service: benchService[p.to], Note: benchNote, ConsentID: st.consents[p][i/len(pairs)%len(st.consents[p])]})
	if err != nil {
		return fmt.Errorf("referral %d from %s to %s: %w", i, p.from, p.to, err)
	}
	return nil
}

// closedRun is what closedLoop measured.
type closedRun struct {
	create time.Duration // until the last CreateReferral returned
	e2e    time.Duration // until the last referral was received at its sender
}

// closedLoop creates n referrals as fast as concurrent creators can, then
// waits until all of them are received at their senders.
func (st *stack) closedLoop(ctx context.Context, n, concurrent int, timeout time.Duration) (closedRun, error) {
	var r closedRun
	cctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	var next, created atomic.Int64
	g, gctx := errgroup.WithContext(cctx)
	start := time.Now()
	for range min(concurrent, n) {
		g.Go(func() error {
			for {
				i := int(next.Add(1)) - 1
				if i >= n {
					return nil
				}
				if err := st.create(gctx, i); err != nil {
					return err
				}
				created.Add(1)
			}
		})
	}
	if err := g.Wait(); err != nil {
		if errors.Is(cctx.Err(), context.DeadlineExceeded) {
			return r, fmt.Errorf("gave up after %v: only %d of %d referrals created", timeout, created.Load(), n)
		}
		return r, fmt.Errorf("%d of %d referrals created, then: %w", created.Load(), n, err)
	}
	r.create = time.Since(start)
	done, err := st.waitReceived(ctx, n, timeout)
	if err != nil {
		return r, err
	}
	r.e2e = done.Sub(start)
	return r, nil
}

// openRun is what openLoop measured.
type openRun struct {
	n     int
	bus   percentiles // sender's outbox insert -> receiver's inbox insert
	call  percentiles // scheduled time -> CreateReferral returned
	drain time.Duration
}

// openWorkers bounds the creators of the open loop; far more than the
// offered load needs, so a slow call does not delay the ones after it.
const openWorkers = 256

// openLoop offers rate referrals per second for d, on a fixed schedule
// whatever the calls take, waits until all are received at their senders,
// and reports the latency of each one.
func (st *stack) openLoop(ctx context.Context, rate int, d time.Duration, timeout time.Duration) (openRun, error) {
	r := openRun{n: int(float64(rate) * d.Seconds())}
	if r.n < 1 {
		return r, errors.New("-rate times -duration is less than one referral")
	}
	earlier, err := st.sentEventIDs(ctx)
	if err != nil {
		return r, err
	}

	cctx, cancel := context.WithTimeout(ctx, d+timeout)
	defer cancel()
	type job struct {
		i   int
		due time.Time
	}
	jobs := make(chan job, r.n)
	calls := make([]time.Duration, r.n)
	var failed atomic.Int64
	var firstErr error
	var errOnce sync.Once
	var workers sync.WaitGroup
	for range openWorkers {
		workers.Go(func() {
			for j := range jobs {
				if err := st.create(cctx, j.i); err != nil {
					failed.Add(1)
					errOnce.Do(func() { firstErr = err })
					continue
				}
				calls[j.i] = time.Since(j.due)
			}
		})
	}
	// Each referral has its time on the schedule; a tick sends every one
	// that is due, so the schedule does not drift when ticks come late.
	interval := time.Second / time.Duration(rate)
	start := time.Now()
	tick := time.NewTicker(min(interval, time.Millisecond))
	next := 0
schedule:
	for next < r.n {
		select {
		case <-cctx.Done():
			break schedule
		case <-tick.C:
			// A tick may have waited in the channel: ask the clock.
			now := time.Now()
			for ; next < r.n; next++ {
				due := start.Add(time.Duration(next) * interval)
				if due.After(now) {
					break
				}
				jobs <- job{i: next, due: due}
			}
		}
	}
	tick.Stop()
	close(jobs)
	workers.Wait()
	if err := cctx.Err(); err != nil {
		return r, fmt.Errorf("offering load: %d of %d referrals issued, then: %w", next, r.n, err)
	}
	if n := failed.Load(); n > 0 {
		return r, fmt.Errorf("%d of %d referrals failed to be created, the first: %w", n, r.n, firstErr)
	}
	created := time.Now()
	done, err := st.waitReceived(ctx, r.n, timeout)
	if err != nil {
		return r, err
	}
	r.drain = done.Sub(created)
	r.call = percentilesOf(calls)

	lat, err := st.busLatencies(ctx, earlier)
	if err != nil {
		return r, err
	}
	if len(lat) != r.n {
		return r, fmt.Errorf("latency report: found %d referral events sent during the run, want %d", len(lat), r.n)
	}
	r.bus = percentilesOf(lat)
	return r, nil
}

// awaiting counts the referrals not yet received at their senders, at
// the nodes of left (all when nil): the events still waiting for their
// receipt (outbox.Awaiting counts a small table, not the referral tables,
// so polling it does not load the databases under test). It returns the
// nodes where some still wait.
func (st *stack) awaiting(ctx context.Context, left []string) (int64, []string, error) {
	if left == nil {
		left = slices.Sorted(maps.Keys(st.pools))
	}
	counts := make([]int64, len(left))
	g, gctx := errgroup.WithContext(ctx)
	for i, a := range left {
		g.Go(func() error {
			n, err := outbox.Awaiting(gctx, st.pools[a])
			if err != nil {
				return fmt.Errorf("count referrals awaiting their receipt at %s: %w", a, err)
			}
			counts[i] = n
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		return 0, nil, err
	}
	var total int64
	var still []string
	for i, n := range counts {
		if n > 0 {
			total += n
			still = append(still, left[i])
		}
	}
	return total, still, nil
}

// waitReceived polls until every referral created so far is received at
// its sender, and returns when it saw that; n is how many the current run
// sent, for the message when it gives up: after timeout, or sooner when
// not one more referral was received for st.stall. It is called once the
// run created its last referral, so a node where none waits any more is
// not asked again (with two dozen nodes, asking them all every few
// milliseconds would load the machine it measures).
func (st *stack) waitReceived(ctx context.Context, n int, timeout time.Duration) (time.Time, error) {
	deadline := time.Now().Add(timeout)
	var last int64 = -1
	var lastProgress time.Time
	var left []string
	for {
		missing, still, err := st.awaiting(ctx, left)
		if err != nil {
			return time.Time{}, err
		}
		if missing == 0 && left != nil {
			// Ask every node once more before saying all are in: a
			// node's count rises after the last create if a receiver
			// answers by itself with a move that wants a receipt (the
			// bench's services do not, but the figure must not rest on
			// that).
			left = nil
			if missing, still, err = st.awaiting(ctx, nil); err != nil {
				return time.Time{}, err
			}
		}
		left = still
		now := time.Now()
		if missing == 0 {
			return now, nil
		}
		if missing != last {
			last, lastProgress = missing, now
		}
		switch {
		case now.After(deadline):
			return time.Time{}, fmt.Errorf("gave up after %v: %d of the %d referrals of this run are still not received at their senders",
				timeout, missing, n)
		case st.stall > 0 && now.Sub(lastProgress) > st.stall:
			return time.Time{}, fmt.Errorf("no referral received for %v, gave up: %d of the %d referrals of this run are still not received at their senders; the services' log says why",
				st.stall, missing, n)
		}
		// Poll often near the end, where the timing is decided, and
		// seldom before, so that counting does not load the databases.
		wait := 100 * time.Millisecond
		if missing < 1000 {
			wait = 5 * time.Millisecond
		}
		select {
		case <-ctx.Done():
			return time.Time{}, fmt.Errorf("waiting for %d referrals to be received: %w", missing, context.Cause(ctx))
		case <-time.After(wait):
		}
	}
}
