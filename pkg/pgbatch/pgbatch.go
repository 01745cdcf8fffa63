// Package pgbatch sends several writes to Postgres in one round trip, as one
// transaction.
//
// A Batch stands in for a transaction wherever sqlc's generated code or
// outbox.Enqueue want one, for statements that return nothing: it queues
// them, and Send pipelines them with a single Sync, so Postgres runs them as
// one implicit transaction that commits whole or not at all. On a machine
// where a loopback round trip costs 0.2 ms, this turns the five round trips
// of BEGIN, three INSERTs and COMMIT into one.
package pgbatch

import (
	"context"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// ErrNotSupported is returned by Query and QueryRow: a batch cannot read.
var ErrNotSupported = errors.New("pgbatch: a batch cannot read; use a transaction")

// Batch queues writes. The zero value is ready to use.
type Batch struct {
	b pgx.Batch
}

// Exec queues a statement; its result comes with Send.
func (b *Batch) Exec(_ context.Context, sql string, args ...any) (pgconn.CommandTag, error) {
	b.b.Queue(sql, args...)
	return pgconn.CommandTag{}, nil
}

// Query is not supported.
func (b *Batch) Query(context.Context, string, ...any) (pgx.Rows, error) {
	return nil, ErrNotSupported
}

// QueryRow is not supported: its Scan returns ErrNotSupported.
func (b *Batch) QueryRow(context.Context, string, ...any) pgx.Row { return errRow{} }

type errRow struct{}

func (errRow) Scan(...any) error { return ErrNotSupported }

// Sender is what Send runs the batch on: a pool or a connection.
type Sender interface {
	SendBatch(ctx context.Context, b *pgx.Batch) pgx.BatchResults
}

// Send runs the queued statements in one round trip. They commit together,
// or the first error is returned and none of them took effect.
func (b *Batch) Send(ctx context.Context, on Sender) error {
	n := b.b.Len()
	res := on.SendBatch(ctx, &b.b)
	for i := range n {
		if _, err := res.Exec(); err != nil {
			_ = res.Close()
			return fmt.Errorf("batch statement %d of %d: %w", i+1, n, err)
		}
	}
	return res.Close()
}
