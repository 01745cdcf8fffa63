// Package testapp is a tiny application made only of pkg's parts, for
// pkg's own tests: a node writes units of work, each sending one event to
// another node, where its effect is one row of a table with no unique key,
// so that an event applied twice shows. Its tables are its own, in schema
// testapp, made by its own migration line after the bus's.
//
// Test code: its SQL is written inline, not generated.
package testapp

import (
	"context"
	"embed"
	"fmt"
	"io/fs"
	"log/slog"
	"sync"
	"time"

	ce "github.com/cloudevents/sdk-go/v2/event"
	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/refbus/refbus/pkg/bus"
	"github.com/refbus/refbus/pkg/busstore"
	"github.com/refbus/refbus/pkg/bustest"
	"github.com/refbus/refbus/pkg/event"
	"github.com/refbus/refbus/pkg/inbox"
	"github.com/refbus/refbus/pkg/outbox"
	"github.com/refbus/refbus/pkg/pgbatch"
	"github.com/refbus/refbus/pkg/pgmigrate"
	"github.com/refbus/refbus/pkg/receipt"
)

// WorkType is the type of a work event (testdata/work.v1.json).
const WorkType = "org.refbus.test.work.v1"

//go:embed testdata/*.json
var schemas embed.FS

//go:embed migration/*.sql
var migrations embed.FS

// Line is the application's migration line.
var Line = pgmigrate.Line{Schema: "testapp", FS: sub(migrations, "migration")}

func sub(f fs.FS, dir string) fs.FS {
	s, err := fs.Sub(f, dir)
	if err != nil {
		panic(err)
	}
	return s
}

// Migrate makes the database at url a node's store: the bus's line, then
// the application's.
func Migrate(ctx context.Context, url string) error {
	return pgmigrate.Up(ctx, url, busstore.Migrations, Line)
}

// Registry holds the work event's schema and the receipt's.
var Registry = sync.OnceValue(func() *event.Registry {
	r, err := event.NewRegistry(sub(schemas, "testdata"), receipt.Schema)
	if err != nil {
		panic(err)
	}
	return r
})

// Work is the data of a work event.
type Work struct {
	Work   string `json:"work"`
	Reject string `json:"reject,omitempty"` // the receiver refuses it with this reason
}

// Event builds the work event d from node from; its subject is the work id.
func Event(from string, d Work) (*ce.Event, error) {
	return Registry().New(bus.Source(from), WorkType, d.Work, d)
}

// Handler applies work events: each one applied adds a row to
// testapp.effect. An event that carries a sequence applies only after the
// one before it of the same subject (inbox.Later otherwise).
type Handler struct{}

// Apply implements inbox.Handler.
func (Handler) Apply(ctx context.Context, tx *pgbatch.Tx, evs []*ce.Event) ([]error, error) {
	results := make([]error, len(evs))
	cur := map[string]int64{}
	var subjects []string
	for _, e := range evs {
		if _, ok := event.Sequence(e); ok {
			subjects = append(subjects, e.Subject())
		}
	}
	if len(subjects) > 0 {
		rows, err := tx.Query(ctx, "SELECT subject, seq FROM testapp.seq_in WHERE subject = ANY($1)", subjects)
		if err != nil {
			return nil, fmt.Errorf("read sequences: %w", err)
		}
		for rows.Next() {
			var s string
			var n int64
			if err := rows.Scan(&s, &n); err != nil {
				rows.Close()
				return nil, err
			}
			cur[s] = n
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return nil, err
		}
	}
	var works, sources, seqSubjects []string
	var seqs, effectSeqs []int64
	for i, e := range evs {
		var d Work
		if err := event.Data(e, &d); err != nil {
			results[i] = inbox.Reject("%v", err)
			continue
		}
		if d.Reject != "" {
			results[i] = inbox.Reject("%s", d.Reject)
			continue
		}
		n, sequenced := event.Sequence(e)
		if sequenced {
			if want := cur[e.Subject()] + 1; n != want {
				results[i] = inbox.Later(fmt.Errorf("event %d of %s came before %d", n, e.Subject(), want))
				continue
			}
			cur[e.Subject()] = n
			seqSubjects, seqs = append(seqSubjects, e.Subject()), append(seqs, n)
		}
		works, sources, effectSeqs = append(works, d.Work), append(sources, e.Source()), append(effectSeqs, n)
	}
	later := tx.Later()
	if len(works) > 0 {
		_, _ = later.Exec(ctx, `INSERT INTO testapp.effect (work_id, source, seq)
			SELECT unnest($1::text[]), unnest($2::text[]), unnest($3::bigint[])`, works, sources, effectSeqs)
	}
	if len(seqSubjects) > 0 {
		_, _ = later.Exec(ctx, `INSERT INTO testapp.seq_in (subject, seq)
			SELECT s, max(n) FROM unnest($1::text[], $2::bigint[]) AS u(s, n) GROUP BY s
			ON CONFLICT (subject) DO UPDATE SET seq = greatest(testapp.seq_in.seq, excluded.seq)`, seqSubjects, seqs)
	}
	return results, nil
}

// Receipted implements inbox.Handler: it logs every receipt, and marks a
// work delivered or refused by the first receipt from its addressee.
func (Handler) Receipted(ctx context.Context, tx *pgbatch.Tx, rs []receipt.Receipt) error {
	var ids, froms, reasons []string
	var refused []bool
	for _, r := range rs {
		if r.EventType != WorkType {
			continue
		}
		ids, froms, reasons, refused = append(ids, r.Subject), append(froms, r.From), append(reasons, r.Reason), append(refused, r.Refused)
	}
	if len(ids) == 0 {
		return nil
	}
	later := tx.Later()
	_, _ = later.Exec(ctx, `INSERT INTO testapp.receipted (work_id, from_node, refused, reason)
		SELECT unnest($1::text[]), unnest($2::text[]), unnest($3::boolean[]), unnest($4::text[])`, ids, froms, refused, reasons)
	_, _ = later.Exec(ctx, `UPDATE testapp.work w
		SET delivered_at = CASE WHEN u.refused THEN NULL ELSE now() END,
		    refused = CASE WHEN u.refused THEN u.reason END
		FROM (SELECT DISTINCT ON (u.id) u.id, u.refused, u.reason
		      FROM unnest($1::text[], $2::text[], $3::boolean[], $4::text[]) WITH ORDINALITY AS u(id, from_node, refused, reason, n)
		      JOIN testapp.work t ON t.id = u.id AND t.to_node = u.from_node
		      ORDER BY u.id, u.n) AS u
		WHERE w.id = u.id AND w.delivered_at IS NULL AND w.refused IS NULL`, ids, froms, refused, reasons)
	return nil
}

// Config is how a node starts.
type Config struct {
	Name        string
	DatabaseURL string
	NATSURL     string
	Stream      bus.StreamConfig
	Consumer    bus.ConsumerConfig
	RelayFault  func(outbox.Stage) error
	InboxFault  func(inbox.Stage) error
	// ReceiptTimeout is the relay's; 0 takes its default.
	ReceiptTimeout time.Duration
	Trust          event.Trust
	// RelaySigner and ReceiptSigner sign the node's events and receipts.
	RelaySigner, ReceiptSigner *event.Signer
	Logger                     *slog.Logger
}

// Node is a running node: its relay, its consumer and its dead-letter
// watch. The first of them to fail stops the others, as a process would.
type Node struct {
	Name     string
	Pool     *pgxpool.Pool
	NC       *nats.Conn
	JS       jetstream.JetStream
	Stream   jetstream.Stream
	Out      *outbox.Outbox
	Relay    *outbox.Relay
	Consumer *inbox.Consumer

	cancel context.CancelFunc
	wg     sync.WaitGroup
	errMu  sync.Mutex
	err    error
	once   sync.Once
}

// Start starts a node.
func Start(ctx context.Context, c Config) (*Node, error) {
	log := c.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	pcfg, err := pgxpool.ParseConfig(c.DatabaseURL)
	if err != nil {
		return nil, err
	}
	pcfg.MaxConns = 8
	pool, err := pgxpool.NewWithConfig(ctx, pcfg)
	if err != nil {
		return nil, err
	}
	nc, err := nats.Connect(c.NATSURL, nats.MaxReconnects(-1), nats.ReconnectWait(100*time.Millisecond))
	if err != nil {
		pool.Close()
		return nil, err
	}
	fail := func(err error) (*Node, error) {
		nc.Close()
		pool.Close()
		return nil, err
	}
	// A publish whose acknowledgement the broker lost fails, and is sent
	// again, instead of holding the relay.
	js, err := jetstream.New(nc, jetstream.WithPublishAsyncTimeout(2*time.Second))
	if err != nil {
		return fail(err)
	}
	stream, err := bus.EnsureStream(ctx, js, c.Stream)
	if err != nil {
		return fail(err)
	}
	cons, err := bus.EnsureConsumer(ctx, js, c.Name, c.Consumer)
	if err != nil {
		return fail(err)
	}
	n := &Node{Name: c.Name, Pool: pool, NC: nc, JS: js, Stream: stream}
	n.Out = outbox.New(pool, c.Name, Registry(), log)
	n.Relay = outbox.NewRelay(pool, js, outbox.RelayOptions{
		Fault: c.RelayFault, ReceiptTimeout: c.ReceiptTimeout, Signer: c.RelaySigner, Logger: log,
		PollInterval: 100 * time.Millisecond,
	})
	n.Out.SetLocalRelay(n.Relay)
	n.Consumer = inbox.NewConsumer(c.Name, pool, cons, js, Registry(), n.Out, Handler{}, inbox.Options{
		Fault: c.InboxFault, BackOff: c.Consumer.BackOff, Trust: c.Trust, Signer: c.ReceiptSigner, Logger: log,
	})
	rctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	n.cancel = cancel
	n.run(rctx, n.Relay.Run)
	n.run(rctx, n.Consumer.Run)
	n.run(rctx, func(ctx context.Context) error { return n.Consumer.WatchDeadLetters(ctx, nc, stream) })
	return n, nil
}

func (n *Node) run(ctx context.Context, f func(context.Context) error) {
	n.wg.Add(1)
	go func() {
		defer n.wg.Done()
		if err := f(ctx); err != nil {
			n.errMu.Lock()
			if n.err == nil {
				n.err = err
			}
			n.errMu.Unlock()
			n.cancel()
		}
	}()
}

// Send makes a unit of work that sends one event to node to.
func (n *Node) Send(ctx context.Context, to string) (string, error) {
	return n.SendWork(ctx, to, Work{})
}

// SendWork writes the work d (a new id when it has none) and its event to
// node to in one transaction, and wakes the relay.
func (n *Node) SendWork(ctx context.Context, to string, d Work) (string, error) {
	if d.Work == "" {
		d.Work = uuid.Must(uuid.NewV7()).String()
	}
	e, err := Event(n.Name, d)
	if err != nil {
		return "", err
	}
	err = pgx.BeginFunc(ctx, n.Pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, "INSERT INTO testapp.work (id, to_node) VALUES ($1, $2)", d.Work, to); err != nil {
			return err
		}
		return n.Out.Enqueue(ctx, tx, outbox.Message{To: to, Event: e})
	})
	if err != nil {
		return "", fmt.Errorf("send work: %w", err)
	}
	n.Out.Wake()
	return d.Work, nil
}

// Stop stops the node and returns the error that stopped a part of it
// first, if one did.
func (n *Node) Stop() error {
	n.once.Do(func() {
		n.cancel()
		n.wg.Wait()
		n.Out.Close()
		n.NC.Close()
		n.Pool.Close()
	})
	n.errMu.Lock()
	defer n.errMu.Unlock()
	return n.err
}

// Effects counts the effects in the store db by work id.
func Effects(ctx context.Context, db bustest.DB) (map[string]int, error) {
	rows, err := db.Query(ctx, "SELECT work_id, count(*) FROM testapp.effect GROUP BY work_id")
	if err != nil {
		return nil, err
	}
	out := map[string]int{}
	for rows.Next() {
		var id string
		var k int
		if err := rows.Scan(&id, &k); err != nil {
			rows.Close()
			return nil, err
		}
		out[id] = k
	}
	return out, rows.Err()
}

// Delivered lists the works in the store db their addressee applied.
func Delivered(ctx context.Context, db bustest.DB) (map[string]bool, error) {
	rows, err := db.Query(ctx, "SELECT id FROM testapp.work WHERE delivered_at IS NOT NULL")
	if err != nil {
		return nil, err
	}
	ids, err := pgx.CollectRows(rows, pgx.RowTo[string])
	out := make(map[string]bool, len(ids))
	for _, id := range ids {
		out[id] = true
	}
	return out, err
}

// Refused is the reason the addressee refused the work id, "" if it did
// not (yet).
func Refused(ctx context.Context, db bustest.DB, id string) (string, error) {
	var r *string
	err := db.QueryRow(ctx, "SELECT refused FROM testapp.work WHERE id = $1", id).Scan(&r)
	if err != nil || r == nil {
		return "", err
	}
	return *r, nil
}

// ReceiptSeen is one receipt Handler.Receipted was told of.
type ReceiptSeen struct {
	Work, From string
	Refused    bool
	Reason     string
}

// ReceiptsSeen lists, in order, the receipts Handler.Receipted was told of
// in the store db.
func ReceiptsSeen(ctx context.Context, db bustest.DB) ([]ReceiptSeen, error) {
	rows, err := db.Query(ctx, "SELECT work_id, from_node, refused, reason FROM testapp.receipted ORDER BY id")
	if err != nil {
		return nil, err
	}
	return pgx.CollectRows(rows, func(r pgx.CollectableRow) (ReceiptSeen, error) {
		var s ReceiptSeen
		err := r.Scan(&s.Work, &s.From, &s.Refused, &s.Reason)
		return s, err
	})
}

// EffectOrder lists the sequences of the effects of subject work, in the
// order they were applied.
func EffectOrder(ctx context.Context, db bustest.DB, work string) ([]int64, error) {
	rows, err := db.Query(ctx, "SELECT seq FROM testapp.effect WHERE work_id = $1 ORDER BY id", work)
	if err != nil {
		return nil, err
	}
	return pgx.CollectRows(rows, pgx.RowTo[int64])
}

// App runs the test application under bustest.Run.
type App struct{}

// Migrate implements bustest.App.
func (App) Migrate(ctx context.Context, url string) error { return Migrate(ctx, url) }

// Start implements bustest.App.
func (App) Start(ctx context.Context, c bustest.NodeConfig) (bustest.Node, error) {
	return Start(ctx, Config{
		Name: c.Name, DatabaseURL: c.DatabaseURL, NATSURL: c.NATSURL, Stream: c.Stream, Consumer: c.Consumer,
		RelayFault: c.RelayFault, InboxFault: c.InboxFault, ReceiptTimeout: c.ReceiptTimeout,
	})
}

// Effects implements bustest.App.
func (App) Effects(ctx context.Context, url string) (map[string]int, error) {
	return withConn(ctx, url, Effects)
}

// Delivered implements bustest.App.
func (App) Delivered(ctx context.Context, url string) (map[string]bool, error) {
	return withConn(ctx, url, Delivered)
}

func withConn[T any](ctx context.Context, url string, f func(context.Context, bustest.DB) (T, error)) (T, error) {
	var zero T
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		return zero, err
	}
	defer conn.Close(context.WithoutCancel(ctx))
	return f(ctx, conn)
}
