package outbox

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/refbus/refbus/pkg/event"
	"github.com/refbus/refbus/pkg/internal/busdb"
)

// RelayOptions tunes a Relay; zero values take the defaults.
type RelayOptions struct {
	// LockKey is the advisory lock that elects one relay per database.
	LockKey int64
	// BatchSize bounds the events published per round (default 1000).
	BatchSize int
	// PollInterval is how long an idle relay waits for a NOTIFY before it
	// looks anyway (default 250ms).
	PollInterval time.Duration
	// ReceiptTimeout is how long a published event may wait for its receipt
	// before the relay sends it again (default 2m).
	ReceiptTimeout time.Duration
	// Fault, if set, is called at named points ("before_publish",
	// "before_mark"); an error stops the relay there as a crash would.
	// Tests use it.
	Fault  func(stage string) error
	Logger *slog.Logger
	// Signer, if set, signs and chains each event before its first
	// publish (schemas/SIGNING.md).
	Signer *event.Signer
}

// DefaultLockKey is the advisory lock key of the relay ("refbus").
const DefaultLockKey int64 = 0x726566627573

// Relay publishes committed outbox rows to JetStream. Any number may run
// against one database; one leads, the others wait for its lock.
type Relay struct {
	pool *pgxpool.Pool
	js   jetstream.JetStream
	o    RelayOptions
	log  *slog.Logger

	leading atomic.Bool
	kick    chan struct{}
}

// Leading reports whether this relay holds the lock now.
func (r *Relay) Leading() bool { return r.leading.Load() }

// Kick wakes this relay without a round trip through Postgres; writers in
// the same process use it instead of NOTIFY (see Outbox.Wake).
func (r *Relay) Kick() {
	select {
	case r.kick <- struct{}{}:
	default:
	}
}

// NewRelay returns a relay over pool that publishes with js.
func NewRelay(pool *pgxpool.Pool, js jetstream.JetStream, o RelayOptions) *Relay {
	if o.LockKey == 0 {
		o.LockKey = DefaultLockKey
	}
	if o.BatchSize == 0 {
		o.BatchSize = 1000
	}
	if o.PollInterval == 0 {
		o.PollInterval = 250 * time.Millisecond
	}
	if o.ReceiptTimeout == 0 {
		o.ReceiptTimeout = 2 * time.Minute
	}
	log := o.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Relay{pool: pool, js: js, o: o, log: log, kick: make(chan struct{}, 1)}
}

// ErrFault wraps the error of a Fault hook.
var ErrFault = errors.New("fault injected")

// Run relays until ctx ends. It returns nil then, or an error wrapping
// ErrFault when a Fault hook stopped it.
func (r *Relay) Run(ctx context.Context) error {
	for ctx.Err() == nil {
		err := r.lead(ctx)
		if errors.Is(err, ErrFault) {
			return err
		}
		if err != nil && ctx.Err() == nil {
			r.log.Warn("relay stopped leading, retrying", "err", err)
		}
		select {
		case <-ctx.Done():
		case <-time.After(time.Second):
		}
	}
	return nil
}

// lead takes the lock and publishes until ctx ends or something fails. The
// connection that holds the lock is closed, not returned to the pool, so
// the lock goes with it.
func (r *Relay) lead(ctx context.Context) error {
	conn, err := r.pool.Acquire(ctx)
	if err != nil {
		return fmt.Errorf("acquire connection: %w", err)
	}
	defer func() {
		_ = conn.Conn().Close(context.WithoutCancel(ctx))
		conn.Release()
	}()
	q := busdb.New(conn)
	ok, err := q.RelayTryLock(ctx, r.o.LockKey)
	if err != nil {
		return fmt.Errorf("try relay lock: %w", err)
	}
	if !ok {
		return nil // another relay leads; try again later
	}
	if err := q.OutboxListen(ctx); err != nil {
		return fmt.Errorf("listen: %w", err)
	}
	r.log.Info("relay leading")
	r.leading.Store(true)
	defer r.leading.Store(false)

	nextResend := time.Now().Add(r.o.ReceiptTimeout / 4)
	for {
		n, err := r.publishBatch(ctx, q)
		if err != nil {
			return err
		}
		if n == r.o.BatchSize {
			continue
		}
		if now := time.Now(); now.After(nextResend) {
			nextResend = now.Add(r.o.ReceiptTimeout / 4)
			cutoff := now.Add(-r.o.ReceiptTimeout)
			k, err := q.OutboxResendUnreceipted(ctx, &cutoff)
			if err != nil {
				return fmt.Errorf("resend unreceipted: %w", err)
			}
			if k > 0 {
				r.log.Warn("resending events without receipt", "events", k)
				continue
			}
		}
		err = r.wait(ctx, conn.Conn(), r.o.PollInterval)
		if ctx.Err() != nil {
			return nil
		}
		if err != nil {
			return fmt.Errorf("wait for notification: %w", err)
		}
	}
}

// wait returns when a NOTIFY or a Kick arrives, or after d. A kick cancels
// WaitForNotification, which pgx survives: it interrupts the read with a
// deadline and leaves the connection usable.
func (r *Relay) wait(ctx context.Context, conn *pgx.Conn, d time.Duration) error {
	select {
	case <-r.kick:
		return nil
	default:
	}
	wctx, cancel := context.WithTimeout(ctx, d)
	defer cancel()
	go func() {
		select {
		case <-r.kick:
			cancel()
		case <-wctx.Done():
		}
	}()
	_, err := conn.WaitForNotification(wctx)
	if err == nil || wctx.Err() != nil {
		return nil // notified, kicked, timed out or shutting down
	}
	return err
}

// publishBatch publishes one batch of pending rows and marks those
// JetStream acknowledged. It returns how many rows it found.
func (r *Relay) publishBatch(ctx context.Context, q *busdb.Queries) (int, error) {
	rows, err := q.OutboxPending(ctx, int32(r.o.BatchSize))
	if err != nil {
		return 0, fmt.Errorf("read pending outbox: %w", err)
	}
	if len(rows) == 0 {
		return 0, nil
	}
	if r.o.Signer != nil {
		if err := r.sign(ctx, q, rows); err != nil {
			return 0, err
		}
	}
	if err := r.fault("before_publish"); err != nil {
		return 0, err
	}
	futures := make([]jetstream.PubAckFuture, 0, len(rows))
	var pubErr error
	for _, row := range rows {
		msgID := row.MsgID
		if row.Republished > 0 {
			// A new id gets past JetStream's dedupe window: the receiver's
			// inbox dedupes on the event id anyway.
			msgID += "#r" + strconv.Itoa(int(row.Republished))
		}
		h := nats.Header{}
		h.Set(nats.MsgIdHdr, msgID)
		h.Set("Content-Type", event.ContentType)
		if row.Traceparent != "" {
			h.Set(event.ExtTraceparent, row.Traceparent)
		}
		f, err := r.js.PublishMsgAsync(&nats.Msg{Subject: row.Subject, Header: h, Data: row.Payload})
		if err != nil {
			pubErr = err
			break
		}
		futures = append(futures, f)
	}
	p := busdb.OutboxMarkPublishedParams{Seqs: make([]int64, 0, len(futures)), StreamSeqs: make([]int64, 0, len(futures))}
	for i, f := range futures {
		select {
		case ack := <-f.Ok():
			p.Seqs = append(p.Seqs, rows[i].Seq)
			p.StreamSeqs = append(p.StreamSeqs, int64(ack.Sequence))
		case err := <-f.Err():
			pubErr = err
		case <-ctx.Done():
			return 0, ctx.Err()
		}
	}
	if err := r.fault("before_mark"); err != nil {
		return 0, err
	}
	if len(p.Seqs) > 0 {
		if err := q.OutboxMarkPublished(context.WithoutCancel(ctx), p); err != nil {
			return 0, fmt.Errorf("mark published: %w", err)
		}
	}
	if pubErr != nil {
		// Unpublished rows stay pending; back off instead of spinning.
		r.log.Warn("publish failed, will retry", "err", pubErr, "published", len(p.Seqs), "pending", len(rows)-len(p.Seqs))
		select {
		case <-ctx.Done():
		case <-time.After(500 * time.Millisecond):
		}
		return 0, nil
	}
	return len(rows), nil
}

func (r *Relay) fault(stage string) error {
	if r.o.Fault == nil {
		return nil
	}
	if err := r.o.Fault(stage); err != nil {
		return fmt.Errorf("%w at %s: %v", ErrFault, stage, err)
	}
	return nil
}
