package outbox

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"sync"
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
	// Fault, if set, is called at each Stage; an error stops the relay
	// there as a crash would. Tests use it.
	Fault  func(Stage) error
	Logger *slog.Logger
	// Signer, if set, signs and chains each event before its first
	// publish (schemas/SIGNING.md).
	Signer *event.Signer
	// GateWarnAfter is how long rows may wait behind an open transaction
	// before the relay logs which one holds them (default 10s).
	GateWarnAfter time.Duration
}

// Stage is a point in a relay's round where a Fault hook is called.
type Stage int

const (
	// BeforePublish is after the relay read (and signed) a batch, before
	// it publishes it; also before a re-send for want of receipts.
	BeforePublish Stage = iota + 1
	// BeforeMark is after JetStream acknowledged the batch, before the
	// relay records it as published.
	BeforeMark
)

// String names the stage, for messages.
func (s Stage) String() string {
	switch s {
	case BeforePublish:
		return "before_publish"
	case BeforeMark:
		return "before_mark"
	}
	return "stage(" + strconv.Itoa(int(s)) + ")"
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
	// kicks counts Kick calls. A kick counted before the relay began a
	// read is answered by that read, so the wait after it ignores it.
	kicks atomic.Uint64
}

// gated are the relays of this process that wait for open transactions
// holding their rows back (the commit-order gate): a commit anywhere in
// the process may be the one they wait for, since the gate reads the
// oldest transaction of the whole Postgres cluster, which several nodes'
// databases may share.
var gated struct {
	mu     sync.Mutex
	relays map[*Relay]struct{}
}

func (r *Relay) setGated(on bool) {
	gated.mu.Lock()
	defer gated.mu.Unlock()
	if !on {
		delete(gated.relays, r)
		return
	}
	if gated.relays == nil {
		gated.relays = map[*Relay]struct{}{}
	}
	gated.relays[r] = struct{}{}
}

// kickGated wakes the relays of this process that wait behind the gate.
func kickGated() {
	gated.mu.Lock()
	defer gated.mu.Unlock()
	for r := range gated.relays {
		r.Kick()
	}
}

// Leading reports whether this relay holds the lock now.
func (r *Relay) Leading() bool { return r.leading.Load() }

// Kick wakes this relay without a round trip through Postgres; writers in
// the same process use it instead of NOTIFY (see Outbox.Wake).
func (r *Relay) Kick() {
	r.kicks.Add(1)
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
	if o.GateWarnAfter == 0 {
		o.GateWarnAfter = 10 * time.Second
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
	cur, err := q.RelayCursor(ctx)
	if err != nil {
		return fmt.Errorf("read relay cursor: %w", err)
	}
	r.log.Info("relay leading")
	r.leading.Store(true)
	defer r.leading.Store(false)
	// The marker records published batches on a connection of its own
	// while this loop reads and publishes the next: the loop goes by its
	// own cursor, which runs ahead of the recorded one by the batches in
	// the marker's queue. After a crash the relay starts from the recorded
	// cursor and publishes those batches again, which JetStream drops as
	// duplicates (same Nats-Msg-Id). It is stopped, its queue recorded,
	// before the lock is given up.
	m := r.startMarker(ctx)
	defer m.stop()

	nextResend := time.Now().Add(r.o.ReceiptTimeout / 4)
	// gate is how long to wait before looking again while rows wait behind
	// a transaction that is still open: short, since it usually commits
	// within a millisecond or two, and longer while it stays open.
	gate := time.Duration(0)
	var gatedSince time.Time
	for {
		seen := r.kicks.Load()
		n, blocked, err := r.publishBatch(ctx, q, &cur, m)
		if err != nil {
			return err
		}
		if n == r.o.BatchSize {
			gate = 0
			continue
		}
		if now := time.Now(); now.After(nextResend) {
			k, err := r.resend(ctx, q, now.Add(-r.o.ReceiptTimeout))
			if err != nil {
				return err
			}
			if k == r.o.BatchSize {
				continue // more are due
			}
			nextResend = now.Add(r.o.ReceiptTimeout / 4)
		}
		d := r.o.PollInterval
		r.warnGated(ctx, conn.Conn(), blocked, &gatedSince)
		switch {
		case !blocked:
			gate = 0
		case gate == 0 || n > 0:
			gate = time.Millisecond
			d = gate
		default:
			gate = min(2*gate, maxGateWait, r.o.PollInterval)
			d = gate
		}
		r.setGated(blocked)
		err = r.wait(ctx, conn.Conn(), d, seen)
		r.setGated(false)
		if ctx.Err() != nil {
			return nil
		}
		if err != nil {
			return fmt.Errorf("wait for notification: %w", err)
		}
	}
}

// warnGated logs, every GateWarnAfter while the gate stays shut, the open
// transaction it waits for: a session left open in a transaction (an
// operator's psql, say) holds back every event of the node.
func (r *Relay) warnGated(ctx context.Context, conn *pgx.Conn, blocked bool, since *time.Time) {
	switch {
	case !blocked:
		*since = time.Time{}
		return
	case since.IsZero():
		*since = time.Now()
		return
	case time.Since(*since) < r.o.GateWarnAfter:
		return
	}
	*since = time.Now()
	// (sqlc does not know the statistics views, hence plain pgx.)
	var pid int32
	var db, user, app, state string
	var open float64
	err := conn.QueryRow(ctx, `SELECT pid, coalesce(datname, ''), coalesce(usename, ''), coalesce(application_name, ''),
	       coalesce(state, ''), coalesce(extract(epoch FROM now() - xact_start), 0)::float8
	FROM pg_stat_activity WHERE backend_xid IS NOT NULL ORDER BY age(backend_xid) DESC LIMIT 1`).Scan(&pid, &db, &user, &app, &state, &open)
	if err != nil {
		r.log.Warn("events wait behind an open transaction", "err", err)
		return
	}
	r.log.Warn("events wait behind an open transaction: commit or end it", "pid", pid, "database", db,
		"user", user, "application", app, "state", state, "open_seconds", int(open))
}

// maxGateWait bounds the wait for an open transaction that holds rows back:
// any write transaction of the database holds them, not only writers that
// wake the relay when they commit.
const maxGateWait = 32 * time.Millisecond

// wait returns when a NOTIFY or a Kick arrives, or after d. A kick counted
// by seen, before the read it follows began, is ignored: that read saw
// what the kick was about, and reading again would find nothing. A kick
// cancels WaitForNotification, which pgx survives: it interrupts the read
// with a deadline and leaves the connection usable.
func (r *Relay) wait(ctx context.Context, conn *pgx.Conn, d time.Duration, seen uint64) error {
	fresh := func() bool { return r.kicks.Load() != seen }
	select {
	case <-r.kick:
		if fresh() {
			return nil
		}
	default:
	}
	wctx, cancel := context.WithTimeout(ctx, d)
	defer cancel()
	go func() {
		for {
			select {
			case <-r.kick:
				if fresh() {
					cancel()
					return
				}
			case <-wctx.Done():
				return
			}
		}
	}()
	_, err := conn.WaitForNotification(wctx)
	if err == nil || wctx.Err() != nil {
		return nil // notified, kicked, timed out or shutting down
	}
	return err
}

// publishBatch publishes the rows after cur that are ready, in commit
// order, moves cur past the last one JetStream acknowledged, and hands them
// to the marker. It returns how many it published, and whether rows wait
// behind a transaction that is still open.
func (r *Relay) publishBatch(ctx context.Context, q *busdb.Queries, cur *busdb.RelayCursorRow, m *marker) (n int, blocked bool, err error) {
	if err := m.failed(); err != nil {
		return 0, false, err
	}
	rows, err := q.OutboxUnpublished(ctx, busdb.OutboxUnpublishedParams{AfterTxid: cur.Txid, AfterSeq: cur.Seq, MaxRows: int32(r.o.BatchSize)})
	if err != nil {
		return 0, false, fmt.Errorf("read unpublished outbox: %w", err)
	}
	ready := 0
	for ready < len(rows) && rows[ready].Ready {
		ready++
	}
	blocked = ready < len(rows)
	rows = rows[:ready]
	if len(rows) == 0 {
		return 0, blocked, nil
	}
	if r.o.Signer != nil {
		if err := r.sign(ctx, q, rows); err != nil {
			return 0, false, err
		}
	}
	if err := r.fault(BeforePublish); err != nil {
		return 0, false, err
	}
	msgs := make([]*nats.Msg, len(rows))
	for i, row := range rows {
		msgs[i] = message(row.Subject, row.MsgID, row.Traceparent, row.Payload, row.Republished)
	}
	streamSeqs, pubErr := r.publish(ctx, msgs)
	if ctx.Err() != nil {
		return 0, false, ctx.Err()
	}
	if err := r.fault(BeforeMark); err != nil {
		return 0, false, err
	}
	if k := len(streamSeqs); k > 0 {
		last := rows[k-1]
		b := busdb.OutboxMarkPublishedParams{LastTxid: last.Txid, LastSeq: last.Seq, Seqs: make([]int64, k), StreamSeqs: streamSeqs}
		for i := range k {
			b.Seqs[i] = rows[i].Seq
		}
		cur.Txid, cur.Seq = last.Txid, last.Seq
		if err := m.mark(ctx, b); err != nil {
			return 0, false, err
		}
	}
	if pubErr != nil {
		r.backOff(ctx, pubErr, len(streamSeqs), len(rows))
		return 0, false, nil
	}
	return len(rows), blocked, nil
}

// marker records published batches (OutboxMarkPublished) in the order the
// relay published them, merging those that come within markLinger of each
// other into one statement.
type marker struct {
	r     *Relay
	queue chan busdb.OutboxMarkPublishedParams
	done  chan struct{}
	mu    sync.Mutex
	err   error
}

// markLinger is how long the marker waits for more published batches
// before it records them, so that a relay publishing a few events at a
// time records many in one statement and commit. What waits unrecorded
// when the relay crashes is published again at restart, and dropped as a
// duplicate.
const markLinger = 20 * time.Millisecond

func (r *Relay) startMarker(ctx context.Context) *marker {
	m := &marker{r: r, queue: make(chan busdb.OutboxMarkPublishedParams, 64), done: make(chan struct{})}
	go m.run(context.WithoutCancel(ctx))
	return m
}

// mark queues a published batch; it waits only when the queue is full.
func (m *marker) mark(ctx context.Context, b busdb.OutboxMarkPublishedParams) error {
	select {
	case m.queue <- b:
		return nil
	case <-m.done:
		return m.failed()
	case <-ctx.Done():
		return ctx.Err()
	}
}

// failed is the error that stopped the marker, if one did.
func (m *marker) failed() error {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.err
}

// stop records what is queued and stops the marker.
func (m *marker) stop() {
	close(m.queue)
	<-m.done
}

func (m *marker) run(ctx context.Context) {
	defer close(m.done)
	q := busdb.New(m.r.pool)
	linger := time.NewTimer(markLinger)
	for b := range m.queue {
		// Merge what queues up behind b for a while: one statement, one
		// commit. Until the queue is closed: stop records at once.
		linger.Reset(markLinger)
	merge:
		for {
			select {
			case more, ok := <-m.queue:
				if !ok {
					break merge
				}
				b.Seqs = append(b.Seqs, more.Seqs...)
				b.StreamSeqs = append(b.StreamSeqs, more.StreamSeqs...)
				b.LastTxid, b.LastSeq = more.LastTxid, more.LastSeq
			case <-linger.C:
				break merge
			}
		}
		mctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		err := q.OutboxMarkPublished(mctx, b)
		cancel()
		if err != nil {
			m.mu.Lock()
			m.err = fmt.Errorf("mark published: %w", err)
			m.mu.Unlock()
			for range m.queue {
				// The relay stops leading; whoever leads next starts
				// from the recorded cursor.
			}
			return
		}
	}
}

// resend publishes again, oldest first, up to a batch of the events whose
// receipt did not come back before cutoff, and records the re-sends
// JetStream acknowledged. It returns how many it found.
func (r *Relay) resend(ctx context.Context, q *busdb.Queries, cutoff time.Time) (int, error) {
	rows, err := q.OutboxUnreceipted(ctx, busdb.OutboxUnreceiptedParams{Cutoff: cutoff, MaxRows: int32(r.o.BatchSize)})
	if err != nil {
		return 0, fmt.Errorf("read unreceipted outbox: %w", err)
	}
	if len(rows) == 0 {
		return 0, nil
	}
	r.log.Warn("resending events without receipt", "events", len(rows))
	if err := r.fault(BeforePublish); err != nil {
		return 0, err
	}
	msgs := make([]*nats.Msg, len(rows))
	for i, row := range rows {
		msgs[i] = message(row.Subject, row.MsgID, row.Traceparent, row.Payload, row.Republished+1)
	}
	streamSeqs, pubErr := r.publish(ctx, msgs)
	if ctx.Err() != nil {
		return 0, ctx.Err()
	}
	if err := r.fault(BeforeMark); err != nil {
		return 0, err
	}
	if k := len(streamSeqs); k > 0 {
		seqs := make([]int64, k)
		for i := range k {
			seqs[i] = rows[i].Seq
		}
		if err := q.OutboxMarkResent(context.WithoutCancel(ctx), seqs); err != nil {
			return 0, fmt.Errorf("mark resent: %w", err)
		}
	}
	if pubErr != nil {
		r.backOff(ctx, pubErr, len(streamSeqs), len(rows))
		return 0, nil
	}
	return len(rows), nil
}

// message is the JetStream message of an outbox row sent for the
// (republished+1)th time.
func message(subject, msgID, traceparent string, payload []byte, republished int32) *nats.Msg {
	if republished > 0 {
		// A new id gets past JetStream's dedupe window: the receiver's
		// inbox dedupes on the event id anyway.
		msgID += "#r" + strconv.Itoa(int(republished))
	}
	h := nats.Header{}
	h.Set(nats.MsgIdHdr, msgID)
	h.Set("Content-Type", event.ContentType)
	if traceparent != "" {
		h.Set(event.ExtTraceparent, traceparent)
	}
	return &nats.Msg{Subject: subject, Header: h, Data: payload}
}

// publish publishes msgs asynchronously and returns the stream sequences of
// the ones JetStream acknowledged in order before the first that failed, and
// that failure: a message after it may be stored, but the cursor must not
// pass the one that is not. A duplicate (Nats-Msg-Id seen before) counts as
// published.
func (r *Relay) publish(ctx context.Context, msgs []*nats.Msg) ([]int64, error) {
	futures := make([]jetstream.PubAckFuture, 0, len(msgs))
	var pubErr error
	for _, m := range msgs {
		f, err := r.js.PublishMsgAsync(m)
		if err != nil {
			pubErr = err
			break
		}
		futures = append(futures, f)
	}
	seqs := make([]int64, 0, len(futures))
	for _, f := range futures {
		select {
		case ack := <-f.Ok():
			seqs = append(seqs, int64(ack.Sequence))
		case err := <-f.Err():
			return seqs, err
		case <-ctx.Done():
			return seqs, ctx.Err()
		}
	}
	return seqs, pubErr
}

// backOff waits a little after a failed publish instead of spinning; the
// rows not acknowledged are sent again in a later round.
func (r *Relay) backOff(ctx context.Context, err error, published, found int) {
	r.log.Warn("publish failed, will retry", "err", err, "published", published, "pending", found-published)
	select {
	case <-ctx.Done():
	case <-time.After(500 * time.Millisecond):
	}
}

func (r *Relay) fault(stage Stage) error {
	if r.o.Fault == nil {
		return nil
	}
	if err := r.o.Fault(stage); err != nil {
		return fmt.Errorf("%w at %s: %w", ErrFault, stage, err)
	}
	return nil
}
