package app

import (
	"context"
	"fmt"
	"time"

	"github.com/refbus/refbus/services/internal/core/coredb"
)

// countFoldEvery is how often the changes to the list counts are folded
// (migration 00006): the pages read the rows not folded yet, so the
// fewer, the cheaper.
const countFoldEvery = time.Second

// FoldCounts folds the changes to the inbox and sent counts written since
// the last fold into the counts, and reports how many counts it changed.
func (a *App) FoldCounts(ctx context.Context) (int64, error) {
	n, err := coredb.New(a.pool).ListCountsFold(ctx)
	if err != nil {
		return 0, fmt.Errorf("fold list counts: %w", err)
	}
	return n, nil
}

// sumCounts sums counts by status and service into counts by status, and
// tells how many referrals match f's status, service and overdue filters.
func sumCounts(cs []coredb.ListCountsRow, f Filter) (counts []Count, match int64) {
	for _, c := range cs {
		if i := len(counts) - 1; i >= 0 && counts[i].Status == c.Status {
			counts[i].N += c.N
			counts[i].Overdue += c.Overdue
		} else {
			counts = append(counts, Count{Status: c.Status, N: c.N, Overdue: c.Overdue})
		}
		if (f.Status == "" || f.Status == c.Status) && (f.Service == "" || f.Service == c.Service) {
			if f.OverdueOnly {
				match += c.Overdue
			} else {
				match += c.N
			}
		}
	}
	return counts, match
}
