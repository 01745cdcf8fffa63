package inbox

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/refbus/refbus/pkg/internal/busdb"
)

// DB is what the read functions read from: a pool, a connection or a
// transaction (a read-only one, for an auditor).
type DB interface {
	Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error)
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
}

// Received is an event this node received, applied or rejected.
type Received struct {
	Source    string // "" for a message that was not even an event
	EventID   string // "stream:<seq>" for such a message
	EventType string
	Subject   string // the NATS subject it came on
	StreamSeq int64
	Outcome   string // "applied" or "rejected"
	// ReceivedAt is when it was applied or rejected.
	ReceivedAt time.Time
}

// ListReceived lists the events of eventType this node received, at most
// max, in order of source and event id after afterSource and afterEventID
// (empty strings for the first page). Receipts applied are not kept, so
// they are not listed.
func ListReceived(ctx context.Context, db DB, eventType, afterSource, afterEventID string, max int) ([]Received, error) {
	rows, err := busdb.New(db).InboxListReceived(ctx, busdb.InboxListReceivedParams{
		EventType: eventType, AfterSource: afterSource, AfterEventID: afterEventID, MaxRows: int32(max),
	})
	if err != nil {
		return nil, fmt.Errorf("list received events: %w", err)
	}
	out := make([]Received, len(rows))
	for i, r := range rows {
		out[i] = Received{Source: r.Source, EventID: r.EventID, EventType: r.EventType, Subject: r.Subject,
			StreamSeq: r.StreamSeq, Outcome: r.Outcome, ReceivedAt: r.ReceivedAt}
	}
	return out, nil
}

// Rejection is an event this node refused, with the reason.
type Rejection struct {
	Source     string    `json:"source" doc:"Who sent it (empty if the message could not be read at all)."`
	EventID    string    `json:"event_id"`
	EventType  string    `json:"event_type,omitempty"`
	Subject    string    `json:"subject" doc:"The NATS subject it came on."`
	StreamSeq  int64     `json:"stream_seq" doc:"Where it is in the REFERRALS stream."`
	Reason     string    `json:"reason"`
	ReceivedAt time.Time `json:"received_at"`
}

// Rejections lists the newest limit events this node refused, newest
// first.
func Rejections(ctx context.Context, db DB, limit int) ([]Rejection, error) {
	rows, err := busdb.New(db).InboxRejections(ctx, int32(limit))
	if err != nil {
		return nil, fmt.Errorf("list rejected events: %w", err)
	}
	out := make([]Rejection, len(rows))
	for i, r := range rows {
		out[i] = Rejection{Source: r.Source, EventID: r.EventID, EventType: r.EventType, Subject: r.Subject,
			StreamSeq: r.StreamSeq, Reason: r.Reason, ReceivedAt: r.ReceivedAt}
	}
	return out, nil
}

// LastReceived is when this node last applied or rejected an event (the
// Unix epoch when it never did): it moves whenever something arrives.
func LastReceived(ctx context.Context, db DB) (time.Time, error) {
	t, err := busdb.New(db).InboxLastReceived(ctx)
	if err != nil {
		return time.Time{}, fmt.Errorf("read last received: %w", err)
	}
	return t, nil
}
