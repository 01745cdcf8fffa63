package outbox

import (
	"context"
	"fmt"
	"time"

	"github.com/google/uuid"

	"github.com/refbus/refbus/pkg/internal/busdb"
)

// Sent is an event this node sent, as its outbox records it.
type Sent struct {
	Seq       int64 // its place in the outbox, in order of writing
	EventID   uuid.UUID
	EventType string
	Subject   string // the NATS subject it is published on
	MsgID     string // its Nats-Msg-Id
	Payload   []byte // the event as published (signed, when the relay signs)
	CreatedAt time.Time
	// StreamSeq and PublishedAt are those of the first publish; nil while
	// the event is not published.
	StreamSeq   *int64
	PublishedAt *time.Time
	// Republished counts the sends again for want of a receipt.
	Republished int32
	// ReceiptedAt, ReceiptOutcome ("applied" or "rejected") and
	// ReceiptReason are those of the first receipt from the addressee; nil
	// while none came.
	ReceiptedAt    *time.Time
	ReceiptOutcome *string
	ReceiptReason  *string
}

// ListSent lists the events of eventType this node sent, in order, at most
// max after the one with seq afterSeq (0 for the first page).
func ListSent(ctx context.Context, db DB, eventType string, afterSeq int64, max int) ([]Sent, error) {
	rows, err := busdb.New(db).OutboxListSent(ctx, busdb.OutboxListSentParams{EventType: eventType, AfterSeq: afterSeq, MaxRows: int32(max)})
	if err != nil {
		return nil, fmt.Errorf("list sent events: %w", err)
	}
	out := make([]Sent, len(rows))
	for i, r := range rows {
		out[i] = Sent{
			Seq: r.Seq, EventID: r.EventID, EventType: r.EventType, Subject: r.Subject, MsgID: r.MsgID,
			Payload: r.Payload, CreatedAt: r.CreatedAt, PublishedAt: r.PublishedAt, Republished: r.Republished,
			ReceiptedAt: r.ReceiptedAt,
		}
		if r.StreamSeq.Valid {
			out[i].StreamSeq = &r.StreamSeq.Int64
		}
		if r.ReceiptOutcome.Valid {
			out[i].ReceiptOutcome = &r.ReceiptOutcome.String
		}
		if r.ReceiptReason.Valid {
			out[i].ReceiptReason = &r.ReceiptReason.String
		}
	}
	return out, nil
}

// LastSeq is the seq of the newest event this node wrote, 0 when none: it
// moves whenever the node sends something.
func LastSeq(ctx context.Context, db DB) (int64, error) {
	seq, err := busdb.New(db).OutboxLastSeq(ctx)
	if err != nil {
		return 0, fmt.Errorf("read last outbox seq: %w", err)
	}
	return seq, nil
}

// Awaiting is how many events this node sent still wait for their
// receipt: work in flight, or, when it stays up, a receiver that does not
// answer.
func Awaiting(ctx context.Context, db DB) (int64, error) {
	n, err := busdb.New(db).OutboxAwaitingCount(ctx)
	if err != nil {
		return 0, fmt.Errorf("count events awaiting their receipt: %w", err)
	}
	return n, nil
}
