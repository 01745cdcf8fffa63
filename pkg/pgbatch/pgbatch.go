// Package pgbatch sends several writes to Postgres in one round trip, as one
// transaction.
//
// A Batch stands in for a transaction wherever sqlc's generated code or
// outbox.Enqueue want one, for statements that return nothing: it queues
// them, and Send pipelines them with a single Sync, so Postgres runs them as
// one implicit transaction that commits whole or not at all: the five round
// trips of BEGIN, three INSERTs and COMMIT become one.
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

// Tx is a transaction on one connection that spends as few round trips as
// it can: BEGIN is sent with its first statement, and writes queued with
// Later are sent with the next statement, or with COMMIT. A consumer that
// reads its inbox, applies a batch with a few set-wise writes and records
// it thus commits in two round trips instead of five.
//
// A queued write's error comes with the statement or COMMIT it travels
// with, so queue only writes whose result nothing decides on.
type Tx struct {
	conn   *pgx.Conn
	queued Batch
	began  bool
	done   bool
}

// Begin starts a transaction on conn without a round trip.
func Begin(conn *pgx.Conn) *Tx { return &Tx{conn: conn} }

// Later returns the Batch of writes queued on t: its Exec queues a
// statement, sent with t's next statement or its COMMIT.
func (t *Tx) Later() *Batch { return &t.queued }

// send runs BEGIN (the first time), the queued writes and then sql in one
// round trip, and returns the results positioned at sql's.
func (t *Tx) send(ctx context.Context, sql string, args []any) (pgx.BatchResults, error) {
	if t.done {
		return nil, pgx.ErrTxClosed
	}
	var b pgx.Batch
	if !t.began {
		b.Queue("BEGIN")
		t.began = true
	}
	b.QueuedQueries = append(b.QueuedQueries, t.queued.b.QueuedQueries...)
	t.queued = Batch{}
	before := b.Len()
	b.Queue(sql, args...)
	res := t.conn.SendBatch(ctx, &b)
	for i := range before {
		if _, err := res.Exec(); err != nil {
			_ = res.Close()
			return nil, fmt.Errorf("batch statement %d of %d: %w", i+1, before, err)
		}
	}
	return res, nil
}

// Exec runs sql after the queued writes.
func (t *Tx) Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error) {
	res, err := t.send(ctx, sql, args)
	if err != nil {
		return pgconn.CommandTag{}, err
	}
	tag, err := res.Exec()
	return tag, errors.Join(err, res.Close())
}

// Query runs sql after the queued writes.
func (t *Tx) Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error) {
	res, err := t.send(ctx, sql, args)
	if err != nil {
		return nil, err
	}
	rows, err := res.Query()
	if err != nil {
		_ = res.Close()
		return nil, err
	}
	return &batchRows{Rows: rows, res: res}, nil
}

// batchRows closes the batch's results with its rows.
type batchRows struct {
	pgx.Rows
	res pgx.BatchResults
}

func (r *batchRows) Close() {
	r.Rows.Close()
	_ = r.res.Close()
}

// QueryRow runs sql after the queued writes.
func (t *Tx) QueryRow(ctx context.Context, sql string, args ...any) pgx.Row {
	rows, err := t.Query(ctx, sql, args...)
	return row{rows: rows, err: err}
}

type row struct {
	rows pgx.Rows
	err  error
}

func (r row) Scan(dest ...any) error {
	if r.err != nil {
		return r.err
	}
	defer r.rows.Close()
	if !r.rows.Next() {
		if err := r.rows.Err(); err != nil {
			return err
		}
		return pgx.ErrNoRows
	}
	if err := r.rows.Scan(dest...); err != nil {
		return err
	}
	r.rows.Close()
	return r.rows.Err()
}

// Commit sends the queued writes and COMMIT in one round trip. A
// transaction that never ran a statement commits without one.
func (t *Tx) Commit(ctx context.Context) error {
	if t.done {
		return pgx.ErrTxClosed
	}
	if !t.began && t.queued.b.Len() == 0 {
		t.done = true
		return nil
	}
	res, err := t.send(ctx, "COMMIT", nil)
	if err == nil {
		var tag pgconn.CommandTag
		tag, err = res.Exec()
		err = errors.Join(err, res.Close())
		// COMMIT of a failed transaction answers ROLLBACK instead of an error.
		if err == nil && tag.String() == "ROLLBACK" {
			err = pgx.ErrTxCommitRollback
		}
	}
	if err != nil {
		// A write that failed before COMMIT left the transaction open.
		return errors.Join(err, t.Rollback(context.WithoutCancel(ctx)))
	}
	t.done = true
	return nil
}

// Rollback ends the transaction if it is still open; the queued writes
// are dropped. After Commit it does nothing.
func (t *Tx) Rollback(ctx context.Context) error {
	if t.done {
		return nil
	}
	t.done = true
	t.queued = Batch{}
	if !t.began {
		return nil
	}
	_, err := t.conn.Exec(ctx, "ROLLBACK")
	return err
}
