// Package reconcile compares what each node's store says it sent and
// received with what the REFERRALS stream holds, and the stores with each
// other: every referral request in a sender's outbox must be in the stream,
// in the receiver's inbox, and receipted.
//
// The stream is read first and only up to where it ended then; the stores
// are read after it, each in one read-only snapshot, through the bus's own
// read functions (outbox.ListSent, inbox.ListReceived): the bus owns its
// tables. So an event published while the auditor runs is never taken for
// one the stream lost.
package reconcile

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/refbus/refbus/pkg/bus"
	"github.com/refbus/refbus/pkg/inbox"
	"github.com/refbus/refbus/pkg/outbox"
	"github.com/refbus/refbus/schemas"
	"github.com/refbus/refbus/services/auditor/internal/stream"
)

// Store is one node's database.
type Store struct {
	Node string
	URL  string
}

// Options say what to reconcile.
type Options struct {
	Stores []Store
	// StuckAfter is how long a request may go without its receipt (from
	// when the sender wrote it) or without reaching the receiver's inbox
	// (from when the stream stored it) before it is a problem rather than
	// in flight.
	StuckAfter time.Duration
	// Report is called with every problem found, in stream order.
	Report func(Finding)
	// Progress, if set, follows the read of the stream.
	Progress stream.Progress
}

// key names an event: the node of its source, and its id.
type key struct {
	from string
	id   uuid.UUID
}

// fact is everything known of one referral request.
type fact struct {
	key
	to, referral string
	seqs         []uint64
	stored       time.Time
	out          *outbox.Sent
	in           *inbox.Received
}

// state is what a reconciliation gathers before judging.
type state struct {
	o      Options
	facts  map[key]*fact
	stores map[string]bool
	last   uint64
	now    time.Time
	sum    Summary
	seen   map[string]key // referral id -> the first request for it
}

// Run reconciles the stores with the stream read through js.
func Run(ctx context.Context, js jetstream.JetStream, o Options) (Summary, error) {
	st := &state{o: o, facts: map[key]*fact{}, stores: map[string]bool{}, seen: map[string]key{}}
	st.sum.Problems, st.sum.StuckAfter = map[Kind]int{}, o.StuckAfter
	for _, s := range o.Stores {
		if !bus.ValidNode(s.Node) {
			return Summary{}, fmt.Errorf("reconcile: %q is not a node name", s.Node)
		}
		if st.stores[s.Node] {
			return Summary{}, fmt.Errorf("reconcile: two stores for %s", s.Node)
		}
		st.stores[s.Node] = true
		st.sum.Stores = append(st.sum.Stores, s.Node)
	}
	if err := st.readStream(ctx, js); err != nil {
		return Summary{}, err
	}
	for _, s := range o.Stores {
		if err := st.readStore(ctx, s); err != nil {
			return Summary{}, err
		}
	}
	st.judge()
	return st.sum, nil
}

func (st *state) fact(k key) *fact {
	f := st.facts[k]
	if f == nil {
		f = &fact{key: k}
		st.facts[k] = f
	}
	return f
}

// readStream indexes every request in the stream by source and id.
func (st *state) readStream(ctx context.Context, js jetstream.JetStream) error {
	s, err := js.Stream(ctx, bus.Stream)
	if err != nil {
		return fmt.Errorf("read stream %s: %w", bus.Stream, err)
	}
	st.last = s.CachedInfo().State.LastSeq
	if st.last == 0 {
		return nil
	}
	o := stream.Options{
		Range:    stream.Range{ToSeq: st.last},
		Subjects: []string{bus.Subject("*", "*", schemas.TypeRequested)},
		Progress: st.o.Progress,
	}
	return stream.Read(ctx, js, o, func(m *stream.Msg) error {
		a := m.Attrs()
		from, ok := bus.NodeOf(a.Source())
		id, err := uuid.ParseBytes(a.Raw(stream.ID))
		if a.Err != nil || !ok || err != nil || !a.Is(stream.Type, schemas.TypeRequested) {
			// Not a request a node could have sent: verify's to report.
			return nil
		}
		st.sum.Copies++
		f := st.fact(key{from: from, id: id})
		if len(f.seqs) == 0 {
			_, f.to = m.Route()
			f.referral, f.stored = a.Subject(), m.Stored
		}
		f.seqs = append(f.seqs, m.Seq)
		return nil
	})
}

// pageSize bounds the rows read from a store at a time.
const pageSize = 5000

// readStore reads the requests one node sent and received, in one
// read-only snapshot.
func (st *state) readStore(ctx context.Context, s Store) error {
	conn, err := pgx.Connect(ctx, s.URL)
	if err != nil {
		return fmt.Errorf("connect to the %s database: %w", s.Node, err)
	}
	defer conn.Close(context.WithoutCancel(ctx))
	err = pgx.BeginTxFunc(ctx, conn, pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly}, func(tx pgx.Tx) error {
		// The database's clock, so that "stuck" is judged by the clock
		// that wrote created_at, not by the auditor's. It reads no table,
		// so it needs no query of the bus's.
		var now time.Time
		if err := tx.QueryRow(ctx, "SELECT now()").Scan(&now); err != nil {
			return fmt.Errorf("read clock: %w", err)
		}
		if now.After(st.now) {
			st.now = now
		}
		if err := st.readOutbox(ctx, tx, s.Node); err != nil {
			return err
		}
		return st.readInbox(ctx, tx, s.Node)
	})
	if err != nil {
		return fmt.Errorf("read the %s database: %w", s.Node, err)
	}
	return nil
}

func (st *state) readOutbox(ctx context.Context, tx pgx.Tx, node string) error {
	var after int64
	for {
		rows, err := outbox.ListSent(ctx, tx, schemas.TypeRequested, after, pageSize)
		if err != nil {
			return err
		}
		for i := range rows {
			r := &rows[i]
			k := key{from: node, id: r.EventID}
			if _, read := st.facts[k]; !read && r.StreamSeq != nil && uint64(*r.StreamSeq) > st.last {
				// First published after the stream was read: judged
				// next time.
				st.sum.InFlight++
				continue
			}
			f := st.fact(k)
			f.out = r
			_, to, _ := bus.ParseSubject(r.Subject)
			if f.to == "" {
				f.to = to
			}
			if f.referral == "" {
				a := stream.ScanBody(r.Payload)
				f.referral = a.Subject()
			}
			r.Payload = nil // read; no need to keep it
		}
		if len(rows) < pageSize {
			return nil
		}
		after = rows[len(rows)-1].Seq
	}
}

func (st *state) readInbox(ctx context.Context, tx pgx.Tx, node string) error {
	var afterSource, afterID string
	for {
		rows, err := inbox.ListReceived(ctx, tx, schemas.TypeRequested, afterSource, afterID, pageSize)
		if err != nil {
			return err
		}
		for i := range rows {
			r := &rows[i]
			from, ok := bus.NodeOf(r.Source)
			id, err := uuid.Parse(r.EventID)
			if !ok || err != nil {
				continue // not a request a node sent: verify's to report
			}
			k := key{from: from, id: id}
			if _, read := st.facts[k]; !read && uint64(r.StreamSeq) > st.last {
				continue // received after the stream was read
			}
			f := st.fact(k)
			f.in = r
			if f.to == "" {
				f.to = node
			}
		}
		if len(rows) < pageSize {
			return nil
		}
		afterSource, afterID = rows[len(rows)-1].Source, rows[len(rows)-1].EventID
	}
}

// judge turns the facts into findings, in stream order (requests the stream
// lacks last, in the order of their senders' outboxes).
func (st *state) judge() {
	facts := make([]*fact, 0, len(st.facts))
	for _, f := range st.facts {
		facts = append(facts, f)
	}
	slices.SortFunc(facts, func(a, b *fact) int {
		return cmp.Or(cmp.Compare(a.order(), b.order()), cmp.Compare(a.from, b.from), slices.Compare(a.id[:], b.id[:]))
	})
	for _, f := range facts {
		st.sum.Requests++
		st.check(f)
	}
}

func (f *fact) order() uint64 {
	switch {
	case len(f.seqs) > 0:
		return f.seqs[0]
	case f.in != nil:
		return uint64(f.in.StreamSeq)
	case f.out != nil && f.out.StreamSeq != nil:
		return uint64(*f.out.StreamSeq)
	case f.out != nil:
		return 1<<62 + uint64(f.out.Seq)
	}
	return 1 << 63
}
