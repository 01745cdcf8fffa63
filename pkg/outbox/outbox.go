// Package outbox sends events without losing them: an event is written in
// the same Postgres transaction as the change that caused it, and a relay
// publishes it to JetStream afterwards, as often as it takes: again after a
// crash, and again while no receipt comes back.
//
// Its tables (bus.outbox, bus.outbox_published, bus.outbox_awaiting,
// bus.relay_cursor) are made by the bus's migration line, package
// busstore; ListSent and LastSeq are how others read them.
package outbox

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	ce "github.com/cloudevents/sdk-go/v2/event"
	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/refbus/refbus/pkg/bus"
	"github.com/refbus/refbus/pkg/event"
	"github.com/refbus/refbus/pkg/internal/busdb"
	"github.com/refbus/refbus/pkg/receipt"
)

// Message is an event and the node it is addressed to.
type Message struct {
	To    string
	Event *ce.Event
	// DataKey, if set, seals the event (event.Registry.Seal) once it is
	// validated: its data about people travels under this key, with
	// WrappedKey (the key wrapped to To, or nil) beside it.
	DataKey, WrappedKey []byte
}

// Outbox enqueues the events of one node.
type Outbox struct {
	self     string
	registry *event.Registry
	pool     *pgxpool.Pool
	log      *slog.Logger

	notifyOnce sync.Once
	notify     chan struct{}
	closeOnce  sync.Once
	done       chan struct{}
	local      *Relay
	// enqueued counts the events Enqueue wrote, so that a writer can tell
	// whether a transaction of its own enqueued any (Enqueued).
	enqueued atomic.Uint64
}

// Enqueued is how many events Enqueue has written so far, committed or not.
// A writer that calls code which may enqueue compares it before and after,
// and wakes the relay only if it moved.
func (o *Outbox) Enqueued() uint64 { return o.enqueued.Load() }

// SetLocalRelay names the relay running in this process, which Wake kicks
// directly while it leads.
func (o *Outbox) SetLocalRelay(r *Relay) { o.local = r }

// New returns the outbox of node self. pool is used only by Wake.
func New(pool *pgxpool.Pool, self string, registry *event.Registry, log *slog.Logger) *Outbox {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Outbox{self: self, registry: registry, pool: pool, log: log, notify: make(chan struct{}, 1), done: make(chan struct{})}
}

// DB is where Enqueue writes and the read functions read: a pgx.Tx, a pool,
// or, for Enqueue, a pgbatch.Batch that commits with the caller's other
// writes in one round trip.
type DB interface {
	Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error)
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
}

// Enqueue validates msgs and writes them in tx. They are published once tx
// commits; call Wake after the commit so that happens at once. An invalid
// event is the caller's bug: Enqueue returns an error wrapping
// event.ErrInvalid or event.ErrUnknownType and writes nothing.
func (o *Outbox) Enqueue(ctx context.Context, tx DB, msgs ...Message) error {
	if len(msgs) == 0 {
		return nil
	}
	p := busdb.OutboxInsertParams{
		EventIds:      make([]uuid.UUID, len(msgs)),
		EventTypes:    make([]string, len(msgs)),
		Subjects:      make([]string, len(msgs)),
		MsgIds:        make([]string, len(msgs)),
		Traceparents:  make([]string, len(msgs)),
		Payloads:      make([][]byte, len(msgs)),
		WantsReceipts: make([]bool, len(msgs)),
	}
	for i, m := range msgs {
		e := m.Event
		if err := o.registry.Validate(e); err != nil {
			return fmt.Errorf("enqueue %s: %w", e.Type(), err)
		}
		if m.DataKey != nil {
			if err := o.registry.Seal(e, m.DataKey, m.WrappedKey); err != nil {
				return fmt.Errorf("enqueue %s: seal: %w", e.Type(), err)
			}
		}
		id, err := uuid.Parse(e.ID())
		if err != nil {
			return fmt.Errorf("enqueue %s: event id %q is not a UUID: %w", e.Type(), e.ID(), err)
		}
		payload, err := event.Encode(e)
		if err != nil {
			return fmt.Errorf("enqueue %s: %w", e.Type(), err)
		}
		tp, _ := e.Extensions()[event.ExtTraceparent].(string)
		p.EventIds[i] = id
		p.EventTypes[i] = e.Type()
		p.Subjects[i] = bus.Subject(o.self, m.To, e.Type())
		p.MsgIds[i] = event.MsgID(e)
		p.Traceparents[i] = tp
		p.Payloads[i] = payload
		p.WantsReceipts[i] = e.Type() != receipt.Type
	}
	if err := busdb.New(tx).OutboxInsert(ctx, p); err != nil {
		return fmt.Errorf("enqueue: insert outbox: %w", err)
	}
	o.enqueued.Add(uint64(len(msgs)))
	return nil
}

// Wake tells the relay, wherever it runs, that events were committed. It
// never blocks: wakes are coalesced into one NOTIFY at a time, sent outside
// the writers' transactions because a NOTIFY inside them would serialise
// every commit of the database behind one lock.
func (o *Outbox) Wake() {
	kickGated()
	if o.local != nil && o.local.Leading() {
		o.local.Kick()
		return
	}
	o.notifyOnce.Do(func() { go o.notifier() })
	select {
	case o.notify <- struct{}{}:
	default:
	}
}

// Committed tells the relays of this process that a transaction
// committed: one that waits for open transactions holding its rows back
// (the commit-order gate) looks again at once instead of after its
// back-off. It costs nothing when none waits.
func (o *Outbox) Committed() { kickGated() }

func (o *Outbox) notifier() {
	q := busdb.New(o.pool)
	for {
		select {
		case <-o.done:
			return
		case <-o.notify:
		}
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		if err := q.OutboxNotify(ctx); err != nil {
			// The relay also polls, so a lost wake only delays.
			o.log.Debug("notify relay", "err", err)
		}
		cancel()
	}
}

// Close stops the goroutine behind Wake. Call it before closing the pool.
func (o *Outbox) Close() {
	o.closeOnce.Do(func() { close(o.done) })
}
