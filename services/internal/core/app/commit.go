package app

import (
	"context"

	"github.com/refbus/refbus/pkg/pgbatch"
	"github.com/refbus/refbus/services/internal/core/coredb"
)

// creation is one referral waiting to be written.
type creation struct {
	r    newReferral
	done chan error
}

// maxGroup bounds the referrals written in one transaction.
const maxGroup = 128

// commitGroups writes the referrals that callers of CreateReferral queue,
// many per transaction: a caller waits for its own commit, but under load
// one round trip and one WAL flush serve a whole group. Alone, a referral
// goes at once. One group is in flight at a time: while it commits, the
// next callers wait to hand theirs over, and the next group takes them all
// (two at once made smaller groups and a slower bus; docs/performance.md,
// 2026-12-04). So a group that waits (a lock, a slow flush) holds up the
// node's creates, as one that fails does while its referrals are written
// again one by one.
func (a *App) commitGroups(ctx context.Context) error {
	group := make([]*creation, 0, maxGroup)
	for {
		group = group[:0]
		select {
		case <-ctx.Done():
			return nil
		case c := <-a.creations:
			group = append(group, c)
		}
	fill:
		for len(group) < maxGroup {
			select {
			case c := <-a.creations:
				group = append(group, c)
			default:
				break fill
			}
		}
		err := a.writeGroup(ctx, group)
		for _, c := range group {
			if err != nil && len(group) > 1 {
				// One bad referral must not fail the others.
				c.done <- a.writeGroup(ctx, []*creation{c})
			} else {
				c.done <- err
			}
		}
		a.out.Wake()
	}
}

// writeGroup writes a group in one round trip: a batch, which cannot read,
// so the kind records a new referral's work with writes alone.
func (a *App) writeGroup(ctx context.Context, group []*creation) error {
	var b pgbatch.Batch
	rs := make([]newReferral, len(group))
	for i, c := range group {
		rs[i] = c.r
	}
	msgs, err := a.writeReferrals(ctx, coredb.New(&b), &b, rs)
	if err != nil {
		return err
	}
	if err := a.enqueue(ctx, &b, msgs...); err != nil {
		return err
	}
	return b.Send(ctx, a.pool)
}

// commit queues a referral for the next group and waits for its commit.
func (a *App) commit(ctx context.Context, r newReferral) error {
	c := &creation{r: r, done: make(chan error, 1)}
	select {
	case a.creations <- c:
	case <-a.stopped:
		return ErrStopped
	case <-ctx.Done():
		return ctx.Err()
	}
	select {
	case err := <-c.done:
		return err
	case <-ctx.Done():
		// The group may still commit; the caller learns no more.
		return ctx.Err()
	}
}
