// Package inbox receives events exactly once: each event is recorded in the
// inbox in the same Postgres transaction as its effect, and acknowledged on
// JetStream only after that transaction commits. A repeat is acknowledged
// and ignored; a bad event is stored as rejected with its reason; every
// applied or rejected event sends a receipt back to its sender (package
// receipt), after the commit.
//
// Receipts that come back for the events this node sent are handled here
// too: checked like any event, recorded in the outbox and told to the
// Handler (Receipted), in the transaction of the batch they came with.
//
// Its tables (bus.inbox, bus.dead_letter) are made by the bus's migration
// line, package busstore; ListReceived, Rejections and LastReceived are how
// others read them.
package inbox

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"time"

	ce "github.com/cloudevents/sdk-go/v2/event"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/refbus/refbus/pkg/bus"
	"github.com/refbus/refbus/pkg/event"
	"github.com/refbus/refbus/pkg/internal/busdb"
	"github.com/refbus/refbus/pkg/outbox"
	"github.com/refbus/refbus/pkg/pgbatch"
	"github.com/refbus/refbus/pkg/receipt"
)

// Handler applies events to a node's own records.
type Handler interface {
	// Apply applies evs, none seen before and none a receipt, in tx and
	// returns one result per event: nil when applied, an error made by
	// Reject when the event is refused for good, or one made by Later
	// when it cannot apply yet. It must make no writes for a refused or
	// deferred event. A non-nil second result aborts the whole batch,
	// which is then retried event by event. Writes queued with tx.Later
	// go with the inbox's own record of the batch and its COMMIT, in one
	// round trip.
	Apply(ctx context.Context, tx *pgbatch.Tx, evs []*ce.Event) ([]error, error)
	// Receipted is told, in the transaction that records them, what
	// receivers said of events this node sent. It is called after Apply,
	// with every receipt that passed the checks (decoded, schema,
	// signature, its sender matches its subject), repeats included, and
	// receipts from any node: its writes must be idempotent, and it must
	// check that a receipt comes from the node its event went to. Queue
	// them with tx.Later so they go with the COMMIT. An error aborts the
	// batch, as Apply's does.
	Receipted(ctx context.Context, tx *pgbatch.Tx, rs []receipt.Receipt) error
}

// RejectError is an event refused for good, with a reason a person can act
// on.
type RejectError struct{ Reason string }

func (e *RejectError) Error() string { return e.Reason }

// Reject refuses an event with a reason.
func Reject(format string, args ...any) error {
	return &RejectError{Reason: fmt.Sprintf(format, args...)}
}

// LaterError is an event that cannot apply yet, such as one that arrived
// before an earlier event about the same subject.
type LaterError struct{ Err error }

func (e *LaterError) Error() string { return "not yet: " + e.Err.Error() }
func (e *LaterError) Unwrap() error { return e.Err }

// Later defers an event: it is redelivered with back-off.
func Later(err error) error { return &LaterError{Err: err} }

// ErrFault wraps the error of a Fault hook.
var ErrFault = errors.New("fault injected")

// Stage is a point in a consumer's round where a Fault hook is called.
type Stage int

const (
	// AfterCommit is after a batch's transaction committed, before its
	// messages are acknowledged and its receipts sent.
	AfterCommit Stage = iota + 1
)

// String names the stage, for messages.
func (s Stage) String() string {
	if s == AfterCommit {
		return "after_commit"
	}
	return "stage(" + strconv.Itoa(int(s)) + ")"
}

// Options tunes a Consumer; zero values take the defaults.
type Options struct {
	// MaxBatch bounds the events applied in one transaction (default 256).
	MaxBatch int
	// BackOff are the waits before redelivering an event that failed or
	// cannot apply yet, by delivery; the last repeats. Use the consumer's
	// (default bus.DefaultBackOff).
	BackOff []time.Duration
	// Fault, if set, is called at each Stage; an error stops the consumer
	// there, without acknowledging, as a crash would. Tests use it.
	Fault  func(Stage) error
	Logger *slog.Logger
	// Trust, if set, are the nodes' public keys: an event not signed by
	// its sender's is rejected (schemas/SIGNING.md).
	Trust event.Keys
	// Signer, if set, signs the receipts, chained in the order this
	// consumer sends them: a chain apart from the relay's, so give it a
	// Signer of its own (schemas/SIGNING.md).
	Signer *event.Signer
}

// Consumer applies the events addressed to one node.
type Consumer struct {
	self string
	pool *pgxpool.Pool
	cons jetstream.Consumer
	// maxDeliver is the consumer's MaxDeliver (0: unbounded).
	maxDeliver int
	registry   *event.Registry
	out        *outbox.Outbox
	receipts   *receipt.Sender
	h          Handler
	o          Options
	log        *slog.Logger
}

// NewConsumer returns the consumer of node self, reading cons. registry
// checks the events (receipts are checked against their own schema).
// Receipts are published with js; out is woken when Apply enqueued events.
func NewConsumer(self string, pool *pgxpool.Pool, cons jetstream.Consumer, js jetstream.JetStream, registry *event.Registry, out *outbox.Outbox, h Handler, o Options) *Consumer {
	if o.MaxBatch == 0 {
		o.MaxBatch = 256
	}
	if len(o.BackOff) == 0 {
		o.BackOff = bus.DefaultBackOff
	}
	if t, ok := o.Trust.(event.Trust); ok && t == nil {
		o.Trust = nil // a nil list is no list
	}
	log := o.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	maxDeliver := 0
	if info := cons.CachedInfo(); info != nil {
		maxDeliver = info.Config.MaxDeliver
	}
	return &Consumer{self: self, pool: pool, cons: cons, maxDeliver: maxDeliver, registry: registry, out: out, h: h, o: o, log: log,
		receipts: receipt.NewSender(self, js, o.Signer)}
}

// Run consumes until ctx ends. It returns nil then, or an error wrapping
// ErrFault when a Fault hook stopped it.
func (c *Consumer) Run(ctx context.Context) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	msgs := make(chan jetstream.Msg, 2*c.o.MaxBatch)
	cc, err := c.cons.Consume(func(m jetstream.Msg) {
		select {
		case msgs <- m:
		case <-ctx.Done():
		}
	},
		jetstream.PullMaxMessages(2*c.o.MaxBatch),
		// Short pulls with frequent heartbeats: when the server that leads
		// this consumer is lost, a missed heartbeat shows it within 4s and
		// the client pulls again from the new leader.
		jetstream.PullExpiry(5*time.Second),
		jetstream.PullHeartbeat(2*time.Second),
		jetstream.ConsumeErrHandler(func(_ jetstream.ConsumeContext, err error) {
			c.log.Debug("consume", "err", err)
		}))
	if err != nil {
		return fmt.Errorf("consume: %w", err)
	}
	defer cc.Stop()
	batch := make([]jetstream.Msg, 0, c.o.MaxBatch)
	for {
		batch = batch[:0]
		select {
		case <-ctx.Done():
			return nil
		case m := <-msgs:
			batch = append(batch, m)
		}
	fill:
		for len(batch) < c.o.MaxBatch {
			select {
			case m := <-msgs:
				batch = append(batch, m)
			default:
				break fill
			}
		}
		if err := c.process(ctx, batch); err != nil {
			return err
		}
	}
}

// delivery is one message and what became of it.
type delivery struct {
	msg     jetstream.Msg // nil when re-driven from the stream
	subject string
	data    []byte
	seq     uint64
	tries   uint64
	ev      *ce.Event
	source  string
	id      string
	// receipt is a receipt event's content, once it passed its checks.
	receipt *receipt.Receipt
	// outcome: "" fresh, "applied", "rejected", "duplicate", "later".
	outcome string
	reason  string
	// first is a duplicate's outcome when it first came ("pending" when
	// that was earlier in the same batch).
	first string
}

func (c *Consumer) process(ctx context.Context, msgs []jetstream.Msg) error {
	ds := make([]*delivery, 0, len(msgs))
	for _, m := range msgs {
		ds = append(ds, c.check(m)...)
	}
	err := c.apply(ctx, ds)
	if errors.Is(err, ErrFault) {
		return err
	}
	if err != nil && ctx.Err() != nil {
		return nil // shutting down: nothing was acknowledged, JetStream redelivers
	}
	if err != nil && len(msgs) > 1 {
		// One bad event must not hold back the rest: retry one by one.
		c.log.Warn("batch failed, applying one by one", "err", err, "events", len(ds))
		for _, m := range msgs {
			if err := c.process(ctx, []jetstream.Msg{m}); err != nil {
				return err
			}
		}
		return nil
	}
	if err != nil {
		c.log.Warn("event failed, will retry", "err", err, "stream_seq", ds[0].seq)
		for _, d := range ds {
			d.outcome, d.reason = "later", err.Error()
		}
	}
	// A message settles once for all the events it carries (a batch of
	// receipts): it is redelivered if any of them must be applied later.
	for i := 0; i < len(ds); {
		m := ds[i].msg
		j, later, rejected := i, "", 0
		for ; j < len(ds) && ds[j].msg == m; j++ {
			switch ds[j].outcome {
			case "applied", "duplicate":
			case "rejected":
				// The reason may quote the event's data: it is in the
				// inbox (Rejections), not in the log.
				rejected++
				c.log.Warn("event rejected", "stream_seq", ds[j].seq, "event_id", ds[j].id, "source", ds[j].source)
			default:
				later = cmp.Or(later, ds[j].reason, "not applied")
			}
		}
		switch {
		case later != "" && c.lastDelivery(ds[i].tries):
			// JetStream delivers it no more, and this node may not read it
			// back from the stream: keep it for Redrive now.
			reason := fmt.Sprintf("not applied in %d deliveries: %s", ds[i].tries, event.Truncate(later, 500))
			if err := c.recordDeadLetter(ctx, ds[i:j], reason); err != nil {
				c.log.Warn("event could not apply on its last delivery; its advisory will record it", "err", err, "stream_seq", ds[i].seq)
				_ = m.NakWithDelay(c.backoff(ds[i].tries))
			} else {
				_ = m.TermWithReason("dead letter")
			}
		case later != "":
			_ = m.NakWithDelay(c.backoff(ds[i].tries))
		case rejected == j-i:
			_ = m.TermWithReason(event.Truncate(ds[i].reason, 200))
		default:
			_ = m.Ack()
		}
		i = j
	}
	return nil
}

// check decodes and validates a message before any database work: one
// delivery per event it carries.
func (c *Consumer) check(m jetstream.Msg) []*delivery {
	var seq, tries uint64
	if md, err := m.Metadata(); err == nil {
		seq, tries = md.Sequence.Stream, md.NumDelivered
	}
	return c.split(m, m.Subject(), m.Headers(), m.Data(), seq, tries)
}

// split makes the deliveries of a message: one, or one per event of a
// batch (event.IsBatch), each inspected.
func (c *Consumer) split(m jetstream.Msg, subject string, h nats.Header, data []byte, seq, tries uint64) []*delivery {
	if !event.IsBatch(h) {
		d := &delivery{msg: m, subject: subject, data: data, seq: seq, tries: tries}
		c.inspect(d, h)
		return []*delivery{d}
	}
	parts, err := event.SplitBatch(data)
	if err != nil {
		d := &delivery{msg: m, subject: subject, data: data, seq: seq, tries: tries,
			source: "", id: "stream:" + strconv.FormatUint(seq, 10), outcome: "rejected", reason: err.Error()}
		return []*delivery{d}
	}
	ds := make([]*delivery, len(parts))
	for i, p := range parts {
		ds[i] = &delivery{msg: m, subject: subject, data: p, seq: seq, tries: tries}
		c.inspect(ds[i], nil)
	}
	return ds
}

// inspect decodes and validates a delivery's message.
func (c *Consumer) inspect(d *delivery, h nats.Header) {
	ev, err := event.Decode(h, d.data)
	if err != nil {
		d.source, d.id = "", "stream:"+strconv.FormatUint(d.seq, 10)
		d.outcome, d.reason = "rejected", err.Error()
		return
	}
	d.ev, d.source, d.id = ev, ev.Source(), ev.ID()
	from, to, err := bus.ParseSubject(d.subject)
	switch {
	case err != nil:
		d.outcome, d.reason = "rejected", err.Error()
	case to != c.self:
		d.outcome, d.reason = "rejected", fmt.Sprintf("event is addressed to %s, not to %s", to, c.self)
	case ev.Source() != bus.Source(from):
		d.outcome, d.reason = "rejected", fmt.Sprintf("event source %q does not match its sender %s", ev.Source(), from)
	case ev.Type() == receipt.Type:
		r, err := receipt.Decode(ev)
		if err == nil && c.o.Trust != nil {
			err = event.Verify(ev, c.o.Trust)
		}
		if err != nil {
			d.outcome, d.reason = "rejected", err.Error()
			return
		}
		d.receipt = &r
	default:
		err := c.registry.Validate(ev)
		if err == nil && c.o.Trust != nil {
			err = event.Verify(ev, c.o.Trust)
		}
		if err != nil {
			d.outcome, d.reason = "rejected", err.Error()
		}
	}
}

// apply runs one transaction for the batch and records each outcome. For
// a batch of new events that takes two round trips to Postgres: BEGIN
// with the dedupe lookup, then the handler's queued writes, the inbox rows
// and COMMIT. A batch of receipts takes one: they skip the dedupe lookup,
// and their records and the handler's go with the COMMIT.
func (c *Consumer) apply(ctx context.Context, ds []*delivery) error {
	conn, err := c.pool.Acquire(ctx)
	if err != nil {
		return fmt.Errorf("acquire connection: %w", err)
	}
	// A connection left inside a transaction is closed, not reused.
	defer conn.Release()
	tx := pgbatch.Begin(conn.Conn())
	defer func() { _ = tx.Rollback(context.WithoutCancel(ctx)) }()
	q := busdb.New(tx)

	if err := c.markSeen(ctx, q, ds); err != nil {
		return err
	}
	var fresh, receipted []*delivery
	var evs []*ce.Event
	var rs []receipt.Receipt
	for _, d := range ds {
		switch {
		case d.outcome != "":
		case d.receipt != nil:
			receipted = append(receipted, d)
			rs = append(rs, *d.receipt)
		default:
			fresh = append(fresh, d)
			evs = append(evs, d.ev)
		}
	}
	enqueued := c.out.Enqueued()
	if len(evs) > 0 {
		results, err := c.h.Apply(ctx, tx, evs)
		if err != nil {
			return fmt.Errorf("apply: %w", err)
		}
		for i, d := range fresh {
			var rej *RejectError
			switch {
			case results[i] == nil:
				d.outcome = "applied"
			case errors.As(results[i], &rej):
				d.outcome, d.reason = "rejected", rej.Reason
			default:
				d.outcome, d.reason = "later", results[i].Error()
			}
		}
	}
	if len(rs) > 0 {
		if err := receipt.Record(ctx, tx.Later(), rs); err != nil {
			return err
		}
		if err := c.h.Receipted(ctx, tx, rs); err != nil {
			return fmt.Errorf("receipted: %w", err)
		}
		for _, d := range receipted {
			d.outcome = "applied"
		}
	}
	if err := c.record(ctx, busdb.New(tx.Later()), ds); err != nil {
		return err
	}
	if err := tx.Commit(ctx); err != nil {
		return fmt.Errorf("commit: %w", err)
	}
	if c.o.Fault != nil {
		if err := c.o.Fault(AfterCommit); err != nil {
			return fmt.Errorf("%w at %s: %w", ErrFault, AfterCommit, err)
		}
	}
	if c.out.Enqueued() != enqueued {
		c.out.Wake() // Apply enqueued events (or another writer did meanwhile: no harm)
	} else {
		c.out.Committed() // the relay may wait for this transaction
	}
	if err := c.receipts.Send(answers(ds)); err != nil {
		// The senders heal what is lost here: they send the events again.
		c.log.Warn("send receipts", "err", err)
	}
	return nil
}

// markSeen marks the deliveries already in the inbox, or repeated within the
// batch, as duplicates.
func (c *Consumer) markSeen(ctx context.Context, q *busdb.Queries, ds []*delivery) error {
	p := busdb.InboxSeenParams{}
	for _, d := range ds {
		if isReceipt(d) {
			continue
		}
		p.Sources = append(p.Sources, d.source)
		p.EventIds = append(p.EventIds, d.id)
	}
	if len(p.Sources) == 0 {
		return nil // only receipts
	}
	rows, err := q.InboxSeen(ctx, p)
	if err != nil {
		return fmt.Errorf("read inbox: %w", err)
	}
	type first struct{ outcome, reason string }
	seen := make(map[[2]string]*first, len(rows)+len(ds))
	for _, r := range rows {
		seen[[2]string{r.Source, r.EventID}] = &first{r.Outcome, r.Reason}
	}
	for _, d := range ds {
		if isReceipt(d) {
			continue
		}
		k := [2]string{d.source, d.id}
		if f := seen[k]; f != nil {
			d.outcome, d.first, d.reason = "duplicate", f.outcome, f.reason
			continue
		}
		seen[k] = &first{"pending", ""}
	}
	return nil
}

// isReceipt reports whether a delivery is a receipt. Receipts skip the
// inbox's dedupe: recording one is idempotent by itself (the first receipt
// of an event counts, a repeat changes nothing), so a repeat is simply
// applied again, and an applied receipt leaves no inbox row. A rejected
// one is kept, like any rejected event.
func isReceipt(d *delivery) bool {
	return d.ev != nil && d.ev.Type() == receipt.Type
}

// record inserts the inbox rows of applied and rejected deliveries.
func (c *Consumer) record(ctx context.Context, q *busdb.Queries, ds []*delivery) error {
	var p busdb.InboxInsertParams
	for _, d := range ds {
		if d.outcome != "applied" && d.outcome != "rejected" || d.outcome == "applied" && isReceipt(d) {
			continue
		}
		typ := ""
		var payload []byte
		if d.ev != nil {
			typ = d.ev.Type()
		}
		if d.outcome == "rejected" {
			payload = d.data
		}
		p.Sources = append(p.Sources, d.source)
		p.EventIds = append(p.EventIds, d.id)
		p.EventTypes = append(p.EventTypes, typ)
		p.Subjects = append(p.Subjects, d.subject)
		p.StreamSeqs = append(p.StreamSeqs, int64(d.seq))
		p.Outcomes = append(p.Outcomes, d.outcome)
		p.Reasons = append(p.Reasons, d.reason)
		p.Payloads = append(p.Payloads, payload)
	}
	if len(p.Sources) == 0 {
		return nil
	}
	if err := q.InboxInsert(ctx, p); err != nil {
		return fmt.Errorf("insert inbox: %w", err)
	}
	return nil
}

// answers are the receipts to send for a batch: those of applied and
// rejected deliveries, and again those of repeats, with the outcome they
// had when they first came: a sender that sends an event twice may have
// missed its receipt.
func answers(ds []*delivery) []receipt.Answer {
	var as []receipt.Answer
	for _, d := range ds {
		outcome := d.outcome
		switch d.outcome {
		case "applied", "rejected":
		case "duplicate":
			if d.first == "pending" {
				continue // its first copy in this batch answers
			}
			outcome = d.first
		default:
			continue
		}
		if d.ev == nil || d.receipt != nil {
			continue // no sender to answer, or a receipt
		}
		as = append(as, receipt.Answer{Event: d.ev, StreamSeq: d.seq, Refused: outcome == "rejected", Reason: d.reason})
	}
	return as
}

// lastDelivery reports whether JetStream delivers a message no more after
// its tries-th delivery.
func (c *Consumer) lastDelivery(tries uint64) bool {
	return c.maxDeliver > 0 && tries >= uint64(c.maxDeliver)
}

// backoff is the wait after the tries-th delivery failed.
func (c *Consumer) backoff(tries uint64) time.Duration {
	i := int(max(tries, 1)) - 1
	return c.o.BackOff[min(i, len(c.o.BackOff)-1)]
}
