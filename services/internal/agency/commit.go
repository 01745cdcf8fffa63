package agency

import (
	"context"
	"errors"
	"fmt"

	"github.com/refbus/refbus/pkg/event"
	"github.com/refbus/refbus/pkg/outbox"
	"github.com/refbus/refbus/pkg/pgbatch"
	"github.com/refbus/refbus/services/internal/db"
)

// creation is one referral waiting to be written.
type creation struct {
	r    newReferral
	done chan error
}

// maxGroup bounds the referrals written in one transaction.
const maxGroup = 128

// committers is how many groups may be in flight at once.
const committers = 2

// commitGroups writes the referrals that callers of CreateReferral queue,
// many per transaction: a caller waits for its own commit as before, but
// under load one round trip and one WAL flush serve a whole group. Alone, a
// referral goes at once.
func (s *Service) commitGroups(ctx context.Context) error {
	group := make([]*creation, 0, maxGroup)
	for {
		group = group[:0]
		select {
		case <-ctx.Done():
			return nil
		case c := <-s.creations:
			group = append(group, c)
		}
	fill:
		for len(group) < maxGroup {
			select {
			case c := <-s.creations:
				group = append(group, c)
			default:
				break fill
			}
		}
		err := s.writeGroup(ctx, group)
		for _, c := range group {
			if err != nil && len(group) > 1 {
				// One bad referral must not fail the others.
				c.done <- s.writeGroup(ctx, []*creation{c})
			} else {
				c.done <- err
			}
		}
		s.out.Wake()
	}
}

func (s *Service) writeGroup(ctx context.Context, group []*creation) error {
	var b pgbatch.Batch
	rs := make([]newReferral, len(group))
	for i, c := range group {
		rs[i] = c.r
	}
	msgs, err := s.writeReferrals(ctx, db.New(&b), rs)
	if err != nil {
		return err
	}
	if err := s.enqueue(ctx, &b, msgs...); err != nil {
		return err
	}
	return b.Send(ctx, s.pool)
}

// enqueue enqueues msgs in db. An event that breaks its schema was built
// from the request (Registry.Build leaves validating to the outbox), so it
// is the caller's ErrInvalid.
func (s *Service) enqueue(ctx context.Context, db outbox.DB, msgs ...outbox.Message) error {
	err := s.out.Enqueue(ctx, db, msgs...)
	if errors.Is(err, event.ErrInvalid) {
		return fmt.Errorf("%w: %v", ErrInvalid, err)
	}
	return err
}

// commit queues a referral for the next group and waits for its commit.
func (s *Service) commit(ctx context.Context, r newReferral) error {
	c := &creation{r: r, done: make(chan error, 1)}
	select {
	case s.creations <- c:
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
