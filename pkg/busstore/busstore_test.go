package busstore_test

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	_ "github.com/jackc/pgx/v5/stdlib"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/pressly/goose/v3"

	"github.com/refbus/refbus/pkg/bus"
	"github.com/refbus/refbus/pkg/busstore"
	"github.com/refbus/refbus/pkg/bustest"
	"github.com/refbus/refbus/pkg/event"
	"github.com/refbus/refbus/pkg/internal/testapp"
	"github.com/refbus/refbus/pkg/natstest"
	"github.com/refbus/refbus/pkg/outbox"
	"github.com/refbus/refbus/pkg/pgmigrate"
	"github.com/refbus/refbus/pkg/pgtest"
	"github.com/refbus/refbus/pkg/poll"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

// legacy migrates a store as the application did before the bus had a
// line of its own: one goose line, everything in public.
func legacy(ctx context.Context, url string) error {
	db, err := sql.Open("pgx", url)
	if err != nil {
		return err
	}
	defer db.Close()
	p, err := goose.NewProvider(goose.DialectPostgres, db, os.DirFS("testdata/legacy"), goose.WithDisableGlobalRegistry(true))
	if err != nil {
		return err
	}
	_, err = p.Up(ctx)
	return err
}

func migrateBus(ctx context.Context, url string) error {
	return pgmigrate.Up(ctx, url, busstore.Migrations)
}

func pool(t *testing.T, url string) *pgxpool.Pool {
	t.Helper()
	p, err := pgxpool.New(t.Context(), url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(p.Close)
	return p
}

var busTables = []string{"dead_letter", "inbox", "outbox", "outbox_awaiting", "outbox_published", "relay_cursor"}

// rows reads every row of each bus table in schema as JSON, in key order.
func rows(t *testing.T, db *pgxpool.Pool, schema string) map[string]string {
	t.Helper()
	out := map[string]string{}
	for _, tbl := range busTables {
		var js *string
		q := fmt.Sprintf("SELECT json_agg(t ORDER BY t)::text FROM %s t", pgx.Identifier{schema, tbl}.Sanitize())
		if tbl == "relay_cursor" {
			q = fmt.Sprintf("SELECT json_agg(t)::text FROM %s t", pgx.Identifier{schema, tbl}.Sanitize())
		}
		if err := db.QueryRow(t.Context(), q).Scan(&js); err != nil {
			t.Fatalf("read %s.%s: %v", schema, tbl, err)
		}
		if js == nil {
			t.Fatalf("%s.%s is empty: the test must fill every table", schema, tbl)
		}
		out[tbl] = *js
	}
	return out
}

// oldColumns re-encodes the rows of a table (JSON, as rows reads them)
// before and after its adoption with only the columns it had before: the
// line's later migrations may add some.
func oldColumns(t *testing.T, before, after string) (string, string) {
	t.Helper()
	var b, a []map[string]any
	if err := json.Unmarshal([]byte(before), &b); err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal([]byte(after), &a); err != nil {
		t.Fatal(err)
	}
	for _, row := range a {
		for col := range row {
			if _, ok := b[0][col]; !ok {
				delete(row, col)
			}
		}
	}
	bj, _ := json.Marshal(b)
	aj, _ := json.Marshal(a)
	return string(bj), string(aj)
}

// shape describes schema bus: its tables' columns, constraints, indexes
// and storage options.
func shape(t *testing.T, db *pgxpool.Pool) []string {
	t.Helper()
	var out []string
	for _, q := range []string{
		`SELECT c.relname || '.' || a.attname || ' ' || format_type(a.atttypid, a.atttypmod) ||
		        CASE WHEN a.attnotnull THEN ' not null' ELSE '' END ||
		        coalesce(' default ' || pg_get_expr(d.adbin, d.adrelid), '') ||
		        CASE WHEN a.attidentity <> '' THEN ' identity ' || a.attidentity::text ELSE '' END
		 FROM pg_attribute a
		 JOIN pg_class c ON c.oid = a.attrelid
		 LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
		 WHERE c.relnamespace = 'bus'::regnamespace AND c.relkind = 'r' AND a.attnum > 0 AND NOT a.attisdropped
		 ORDER BY c.relname, a.attnum`,
		`SELECT conrelid::regclass::text || ' ' || conname || ' ' || pg_get_constraintdef(oid)
		 FROM pg_constraint WHERE connamespace = 'bus'::regnamespace ORDER BY 1`,
		`SELECT indexdef FROM pg_indexes WHERE schemaname = 'bus' ORDER BY indexname`,
		`SELECT relname || ' ' || relkind::text || ' ' || coalesce(reloptions::text, '')
		 FROM pg_class WHERE relnamespace = 'bus'::regnamespace ORDER BY relname`,
	} {
		r, err := db.Query(t.Context(), q)
		if err != nil {
			t.Fatal(err)
		}
		lines, err := pgx.CollectRows(r, pgx.RowTo[string])
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, lines...)
	}
	return out
}

func encoded(t *testing.T, id string) []byte {
	t.Helper()
	e, err := testapp.Event("alpha", testapp.Work{Work: id})
	if err != nil {
		t.Fatal(err)
	}
	b, err := event.Encode(e)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// A store made by the application's single migration line is adopted:
// after the bus's line, its tables are in schema bus with every row, shaped
// exactly as in a fresh store, and the relay goes on from its cursor.
func TestAdoptsStoreOfTheSingleLine(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	oldURL := pgtest.New(t, "busstore_legacy", legacy)
	old := pool(t, oldURL)
	fresh := pool(t, pgtest.New(t, "busstore_fresh", migrateBus))

	// Two events published (the cursor after them), the first receipted;
	// two written later and not published yet.
	ids := make([]uuid.UUID, 4)
	for i := range ids {
		ids[i] = uuid.Must(uuid.NewV7())
	}
	insert := func(tx pgx.Tx, i int) {
		_, err := tx.Exec(ctx, `INSERT INTO outbox (event_id, event_type, subject, msg_id, payload, wants_receipt)
			VALUES ($1, $2, 'refbus.alpha.beta.test.work', $3, $4, true)`,
			ids[i], testapp.WorkType, "/agencies/alpha#"+ids[i].String(), encoded(t, ids[i].String()))
		if err != nil {
			t.Fatal(err)
		}
		if i > 0 {
			if _, err := tx.Exec(ctx, "INSERT INTO outbox_awaiting SELECT seq, created_at FROM outbox WHERE event_id = $1", ids[i]); err != nil {
				t.Fatal(err)
			}
		}
	}
	err := pgx.BeginFunc(ctx, old, func(tx pgx.Tx) error {
		insert(tx, 0)
		insert(tx, 1)
		if _, err := tx.Exec(ctx, "UPDATE outbox SET receipted_at = now(), receipt_outcome = 'applied' WHERE event_id = $1", ids[0]); err != nil {
			return err
		}
		_, err := tx.Exec(ctx, `
			INSERT INTO outbox_published (seq, stream_seq) SELECT seq, 100 + seq FROM outbox;
			UPDATE relay_cursor SET txid = pg_current_xact_id(), seq = (SELECT max(seq) FROM outbox);`)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	err = pgx.BeginFunc(ctx, old, func(tx pgx.Tx) error {
		insert(tx, 2)
		insert(tx, 3)
		_, err := tx.Exec(ctx, `
			INSERT INTO inbox (source, event_id, event_type, subject, stream_seq, outcome) VALUES ('/agencies/beta', 'e1', 't', 's', 7, 'applied');
			INSERT INTO inbox (source, event_id, event_type, subject, stream_seq, outcome, reason, payload) VALUES ('', 'stream:8', '', 's', 8, 'rejected', 'bad', '\x00');
			INSERT INTO dead_letter (stream_seq, subject, deliveries) VALUES (9, 's', 20);`)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	before := rows(t, old, "public")

	if err := pgmigrate.Up(ctx, oldURL, busstore.Migrations); err != nil {
		t.Fatal(err)
	}

	after := rows(t, old, "bus")
	for _, tbl := range busTables {
		if b, a := oldColumns(t, before[tbl], after[tbl]); b != a {
			t.Errorf("bus.%s differs from the public.%s it adopted:\n  before %s\n  after  %s", tbl, tbl, b, a)
		}
	}
	var left []string
	r, err := old.Query(ctx, `SELECT relname FROM pg_class WHERE relnamespace = 'public'::regnamespace AND relkind = 'r' ORDER BY 1`)
	if err != nil {
		t.Fatal(err)
	}
	if left, err = pgx.CollectRows(r, pgx.RowTo[string]); err != nil {
		t.Fatal(err)
	}
	for _, tbl := range busTables {
		if slices.Contains(left, tbl) {
			t.Errorf("public.%s is still there", tbl)
		}
	}
	for _, tbl := range []string{"goose_db_version", "referral"} {
		if !slices.Contains(left, tbl) {
			t.Errorf("public.%s, the application's, is gone", tbl)
		}
	}
	if a, f := shape(t, old), shape(t, fresh); !slices.Equal(a, f) {
		t.Errorf("adopted and fresh stores differ:\nadopted:\n  %s\nfresh:\n  %s", strings.Join(a, "\n  "), strings.Join(f, "\n  "))
	}

	// The relay goes on from the adopted cursor: it publishes the two
	// events after it, and a new one, and nothing before it.
	js := broker(t)
	ob := outbox.New(old, "alpha", testapp.Registry(), nil)
	t.Cleanup(ob.Close)
	e, err := testapp.Event("alpha", testapp.Work{Work: "new"})
	if err != nil {
		t.Fatal(err)
	}
	err = pgx.BeginFunc(ctx, old, func(tx pgx.Tx) error { return ob.Enqueue(ctx, tx, outbox.Message{To: "beta", Event: e}) })
	if err != nil {
		t.Fatal(err)
	}
	relay := outbox.NewRelay(old, js, outbox.RelayOptions{PollInterval: 20 * time.Millisecond})
	rctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- relay.Run(rctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Error(err)
		}
	})
	poll.Until(t, 10*time.Second, func() error {
		ok, err := bustest.CursorPassed(ctx, old, uuid.MustParse(e.ID()))
		if err == nil && !ok {
			err = fmt.Errorf("the cursor is not past the new event")
		}
		return err
	})
	sent, err := outbox.ListSent(ctx, old, testapp.WorkType, 0, 10)
	if err != nil {
		t.Fatal(err)
	}
	want := []int64{101, 102, 1, 2, 3}
	if len(sent) != len(want) {
		t.Fatalf("%d events in the outbox, want %d", len(sent), len(want))
	}
	for i, s := range sent {
		if s.Seq != int64(i+1) || s.StreamSeq == nil || *s.StreamSeq != want[i] {
			t.Errorf("event %d: seq %d, stream seq %v; want seq %d, stream seq %d", i, s.Seq, s.StreamSeq, i+1, want[i])
		}
	}
	if n := streamMsgs(t, js); n != 3 {
		t.Errorf("%d messages in the stream, want the 3 after the cursor", n)
	}
}

// A store of the single line older than its relay cursor is refused, not
// adopted half-made.
func TestRefusesStoreBeforeTheCursor(t *testing.T) {
	t.Parallel()
	url := pgtest.New(t, "busstore_empty", func(context.Context, string) error { return nil })
	conn, err := pgx.Connect(t.Context(), url)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	if _, err := conn.Exec(t.Context(), "CREATE TABLE public.outbox (seq bigint)"); err != nil {
		t.Fatal(err)
	}
	err = pgmigrate.Up(t.Context(), url, busstore.Migrations)
	if err == nil || !strings.Contains(err.Error(), "00019") {
		t.Fatalf("migrated a store without relay_cursor: %v", err)
	}
}

// broker starts a broker with the bus's stream, for a relay to publish to.
func broker(t *testing.T) jetstream.JetStream {
	t.Helper()
	js, err := jetstream.New(natstest.New(t).Connect())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := bus.EnsureStream(t.Context(), js, bus.StreamConfig{}); err != nil {
		t.Fatal(err)
	}
	return js
}

func streamMsgs(t *testing.T, js jetstream.JetStream) uint64 {
	t.Helper()
	s, err := js.Stream(t.Context(), bus.Stream)
	if err != nil {
		t.Fatal(err)
	}
	info, err := s.Info(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	return info.State.Msgs
}
