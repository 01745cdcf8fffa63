package bustest

import (
	"context"
	"fmt"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/refbus/refbus/pkg/bus"
	"github.com/refbus/refbus/pkg/bustest/internal/kitdb"
)

// DB is what the checks read from: a pool, a connection or a transaction.
type DB interface {
	Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error)
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
}

// Tally is a node's bus tables counted.
type Tally struct {
	// Inbox counts the inbox's rows by event type, then by outcome
	// ("applied", "rejected"). Receipts applied leave no row.
	Inbox map[string]map[string]int64
	// Outbox counts the outbox's rows by event type.
	Outbox map[string]OutboxCounts
	// Awaiting is how many events still wait for their receipt.
	Awaiting int64
}

// OutboxCounts are the events of one type a node wrote, published (at
// least once) and saw receipted.
type OutboxCounts struct {
	Written, Published, Receipted int64
}

// Applied is how many events of eventType the inbox applied.
func (c Tally) Applied(eventType string) int64 { return c.Inbox[eventType]["applied"] }

// Rejected is how many events of eventType the inbox rejected.
func (c Tally) Rejected(eventType string) int64 { return c.Inbox[eventType]["rejected"] }

// Counts counts the bus tables of the store db.
func Counts(ctx context.Context, db DB) (Tally, error) {
	q := kitdb.New(db)
	c := Tally{Inbox: map[string]map[string]int64{}, Outbox: map[string]OutboxCounts{}}
	in, err := q.KitInboxCounts(ctx)
	if err != nil {
		return c, fmt.Errorf("count inbox: %w", err)
	}
	for _, r := range in {
		if c.Inbox[r.EventType] == nil {
			c.Inbox[r.EventType] = map[string]int64{}
		}
		c.Inbox[r.EventType][r.Outcome] = r.N
	}
	out, err := q.KitOutboxCounts(ctx)
	if err != nil {
		return c, fmt.Errorf("count outbox: %w", err)
	}
	for _, r := range out {
		c.Outbox[r.EventType] = OutboxCounts{Written: r.Written, Published: r.Published, Receipted: r.Receipted}
	}
	if c.Awaiting, err = q.KitAwaiting(ctx); err != nil {
		return c, fmt.Errorf("count awaiting: %w", err)
	}
	return c, nil
}

// CursorPassed reports whether the relay's recorded cursor is at or after
// the outbox row of the event eventID.
func CursorPassed(ctx context.Context, db DB, eventID uuid.UUID) (bool, error) {
	ok, err := kitdb.New(db).KitCursorPassed(ctx, eventID)
	if err != nil {
		return false, fmt.Errorf("read relay cursor: %w", err)
	}
	return ok, nil
}

// ConsumerIdle returns nil once node's consumer has nothing left to
// deliver and nothing delivered unacknowledged: every event sent to it so
// far was settled. Use it with poll.Until before counting effects, so that
// repeats still on their way are counted too.
func ConsumerIdle(ctx context.Context, js jetstream.JetStream, node string) error {
	cons, err := js.Consumer(ctx, bus.Stream, node)
	if err != nil {
		return fmt.Errorf("consumer %s: %w", node, err)
	}
	info, err := cons.Info(ctx)
	if err != nil {
		return fmt.Errorf("consumer %s: %w", node, err)
	}
	if info.NumPending != 0 || info.NumAckPending != 0 {
		return fmt.Errorf("consumer %s: %d pending, %d unacknowledged", node, info.NumPending, info.NumAckPending)
	}
	return nil
}
