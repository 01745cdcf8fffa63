package agency

import (
	"context"

	"github.com/google/uuid"

	"github.com/refbus/refbus/services/internal/db"
)

// Counts tells tests how many inbox rows ("inbox <type> <outcome>") and
// outbox rows ("outbox <type>", "published <type>", "receipted <type>") the
// store holds.
func (s *Service) Counts(ctx context.Context) (map[string]int64, error) {
	q := db.New(s.pool)
	out := map[string]int64{}
	in, err := q.InboxCounts(ctx)
	if err != nil {
		return nil, err
	}
	for _, r := range in {
		out["inbox "+r.EventType+" "+r.Outcome] = r.N
	}
	ob, err := q.OutboxCounts(ctx)
	if err != nil {
		return nil, err
	}
	for _, r := range ob {
		out["outbox "+r.EventType] = r.N
		out["published "+r.EventType] = r.Published
		out["receipted "+r.EventType] = r.Receipted
	}
	return out, nil
}

// Seal and Open expose the sealing of confidential fields to tests.
func (s *Service) Seal(ctx context.Context, to string, id uuid.UUID, plain string) (string, error) {
	return s.seal(ctx, to, id, plain)
}

func (s *Service) Open(id uuid.UUID, sealed string) (string, error) { return s.open(id, sealed) }
