package outbox

import (
	"context"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgtype"

	"github.com/refbus/refbus/pkg/event"
	"github.com/refbus/refbus/pkg/internal/busdb"
)

// sign signs and chains the rows of a batch that were never signed, in
// order, after the chain head stored in the outbox, and stores them before
// anything is published: a row is signed once, so every publish of it
// carries the same bytes. Only the leading relay signs, so the head read
// here is the last one signed.
//
// The batch is already in chain order, the order to publish in: rows are
// read and signed in commit order after the cursor, and only ready rows,
// whose order nothing can change any more. So rows signed earlier and not
// yet past the cursor (a batch cut short by a crash or a failed publish)
// come first, in the order they were chained.
func (r *Relay) sign(ctx context.Context, q *busdb.Queries, rows []busdb.OutboxUnpublishedRow) error {
	var p busdb.OutboxSignParams
	var pos int64
	for i := range rows {
		row := &rows[i]
		if row.ChainPos.Valid || row.Published || row.Republished > 0 {
			// Signed already, or sent unsigned before the relay had a
			// signer: a re-send carries the bytes sent first.
			continue
		}
		if len(p.Seqs) == 0 {
			head, err := q.OutboxChainHead(ctx)
			if err != nil && !errors.Is(err, pgx.ErrNoRows) {
				return fmt.Errorf("read chain head: %w", err)
			}
			r.o.Signer.Restore(head.ChainHash)
			pos = head.ChainPos
		}
		e, err := event.Decode(nil, row.Payload)
		if err != nil {
			return fmt.Errorf("sign outbox row %d: %w", row.Seq, err)
		}
		h, err := r.o.Signer.Sign(e)
		if err != nil {
			return fmt.Errorf("sign outbox row %d: %w", row.Seq, err)
		}
		b, err := event.Encode(e)
		if err != nil {
			return fmt.Errorf("sign outbox row %d: %w", row.Seq, err)
		}
		pos++
		row.Payload, row.ChainPos = b, pgtype.Int8{Int64: pos, Valid: true}
		p.Seqs = append(p.Seqs, row.Seq)
		p.Payloads = append(p.Payloads, b)
		p.ChainPoss = append(p.ChainPoss, pos)
		p.ChainHashes = append(p.ChainHashes, h)
	}
	if len(p.Seqs) > 0 {
		if err := q.OutboxSign(ctx, p); err != nil {
			return fmt.Errorf("store signed events: %w", err)
		}
	}
	return nil
}
