package main

import (
	"context"
	"fmt"
	"math"
	"slices"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/refbus/refbus/pkg/inbox"
	"github.com/refbus/refbus/pkg/outbox"
	"github.com/refbus/refbus/schemas"
)

// percentiles summarise a set of durations.
type percentiles struct{ p50, p90, p99, max time.Duration }

// percentilesOf uses the nearest-rank method; ds is sorted in place.
func percentilesOf(ds []time.Duration) percentiles {
	if len(ds) == 0 {
		return percentiles{}
	}
	slices.Sort(ds)
	at := func(p float64) time.Duration {
		i := int(math.Ceil(p*float64(len(ds)))) - 1
		return ds[max(i, 0)]
	}
	return percentiles{p50: at(0.50), p90: at(0.90), p99: at(0.99), max: ds[len(ds)-1]}
}

// sentEventIDs returns the ids of every referral event the agencies have
// sent so far, to leave them out of the next latency report.
func (st *stack) sentEventIDs(ctx context.Context) (map[string]bool, error) {
	ids := map[string]bool{}
	for a, pool := range st.pools {
		err := sent(ctx, pool, func(r outbox.Sent) { ids[r.EventID.String()] = true })
		if err != nil {
			return nil, fmt.Errorf("read outbox of %s: %w", a, err)
		}
	}
	return ids, nil
}

// busLatencies joins, by event id across the four databases, when each
// referral event was inserted in its sender's outbox and when it was inserted
// in its receiver's inbox. Both are clock_timestamp() of the same Postgres
// server, so no clocks need agreeing. Events in earlier are left out; an
// event not in any inbox yet is an error.
func (st *stack) busLatencies(ctx context.Context, earlier map[string]bool) ([]time.Duration, error) {
	received := map[string]time.Time{}
	for a, pool := range st.pools {
		after := inbox.Received{}
		for {
			rows, err := inbox.ListReceived(ctx, pool, schemas.TypeRequested, after.Source, after.EventID, page)
			if err != nil {
				return nil, fmt.Errorf("read inbox of %s: %w", a, err)
			}
			for _, r := range rows {
				if r.Outcome == "applied" {
					received[r.EventID] = r.ReceivedAt
				}
			}
			if len(rows) < page {
				break
			}
			after = rows[len(rows)-1]
		}
	}
	var lat []time.Duration
	missing := 0
	var example string
	for a, pool := range st.pools {
		err := sent(ctx, pool, func(r outbox.Sent) {
			id := r.EventID.String()
			if earlier[id] {
				return
			}
			at, ok := received[id]
			if !ok {
				missing++
				example = a + "'s event " + id
				return
			}
			lat = append(lat, at.Sub(r.CreatedAt))
		})
		if err != nil {
			return nil, fmt.Errorf("read outbox of %s: %w", a, err)
		}
	}
	if missing > 0 {
		return nil, fmt.Errorf("latency report: %d referral events sent are applied in no receiver's inbox, such as %s (see the receivers' rejections)", missing, example)
	}
	return lat, nil
}

// page is how many rows a report reads at a time.
const page = 10000

// sent calls f with every referral request the node whose store is pool
// sent, in order.
func sent(ctx context.Context, pool *pgxpool.Pool, f func(outbox.Sent)) error {
	after := int64(0)
	for {
		rows, err := outbox.ListSent(ctx, pool, schemas.TypeRequested, after, page)
		if err != nil {
			return err
		}
		for _, r := range rows {
			f(r)
		}
		if len(rows) < page {
			return nil
		}
		after = rows[len(rows)-1].Seq
	}
}
