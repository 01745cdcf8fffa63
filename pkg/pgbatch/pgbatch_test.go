package pgbatch_test

import (
	"context"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/refbus/refbus/pkg/pgbatch"
	"github.com/refbus/refbus/pkg/pgtest"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

func migrate(ctx context.Context, url string) error {
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		return err
	}
	defer conn.Close(ctx)
	_, err = conn.Exec(ctx, "CREATE TABLE t (id int PRIMARY KEY)")
	return err
}

func count(t *testing.T, conn *pgx.Conn) int {
	t.Helper()
	var n int
	if err := conn.QueryRow(context.Background(), "SELECT count(*) FROM t").Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

// A batch commits whole, or not at all when one statement fails.
func TestBatchIsOneTransaction(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, pgtest.New(t, "pgbatch", migrate))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)

	var ok pgbatch.Batch
	ok.Exec(ctx, "INSERT INTO t VALUES ($1)", 1)
	ok.Exec(ctx, "INSERT INTO t VALUES ($1)", 2)
	if err := ok.Send(ctx, conn); err != nil {
		t.Fatal(err)
	}
	if n := count(t, conn); n != 2 {
		t.Fatalf("%d rows after a good batch, want 2", n)
	}

	var bad pgbatch.Batch
	bad.Exec(ctx, "INSERT INTO t VALUES ($1)", 3)
	bad.Exec(ctx, "INSERT INTO t VALUES ($1)", 1) // duplicate key
	bad.Exec(ctx, "INSERT INTO t VALUES ($1)", 4)
	if err := bad.Send(ctx, conn); err == nil {
		t.Fatal("a batch with a duplicate key succeeded")
	}
	if n := count(t, conn); n != 2 {
		t.Fatalf("%d rows after a failed batch, want 2: its first statement was not rolled back", n)
	}
	if err := bad.QueryRow(ctx, "SELECT 1").Scan(new(int)); err != pgbatch.ErrNotSupported {
		t.Fatalf("QueryRow: %v", err)
	}
}

// roundTrips counts the batches and statements a connection sends.
type roundTrips struct{ n int }

func (r *roundTrips) TraceBatchStart(ctx context.Context, _ *pgx.Conn, _ pgx.TraceBatchStartData) context.Context {
	r.n++
	return ctx
}
func (*roundTrips) TraceBatchQuery(context.Context, *pgx.Conn, pgx.TraceBatchQueryData) {}
func (*roundTrips) TraceBatchEnd(context.Context, *pgx.Conn, pgx.TraceBatchEndData)     {}
func (r *roundTrips) TraceQueryStart(ctx context.Context, _ *pgx.Conn, _ pgx.TraceQueryStartData) context.Context {
	r.n++
	return ctx
}
func (*roundTrips) TraceQueryEnd(context.Context, *pgx.Conn, pgx.TraceQueryEndData) {}

// A Tx sends BEGIN with its first statement and queued writes with the
// next statement or COMMIT; reads see the writes queued before them, and
// everything commits together.
func TestTxSavesRoundTrips(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	url := pgtest.New(t, "pgbatch", migrate)
	cfg, err := pgx.ParseConfig(url)
	if err != nil {
		t.Fatal(err)
	}
	trips := &roundTrips{}
	cfg.Tracer = trips
	conn, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	other, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close(ctx)

	tx := pgbatch.Begin(conn)
	var n int
	if err := tx.QueryRow(ctx, "SELECT count(*) FROM t").Scan(&n); err != nil || n != 0 {
		t.Fatalf("first read: %d rows, %v", n, err)
	}
	later := tx.Later()
	later.Exec(ctx, "INSERT INTO t VALUES ($1)", 1)
	later.Exec(ctx, "INSERT INTO t VALUES ($1)", 2)
	if err := tx.QueryRow(ctx, "SELECT count(*) FROM t").Scan(&n); err != nil || n != 2 {
		t.Fatalf("read after two queued writes: %d rows, %v; want 2", n, err)
	}
	later.Exec(ctx, "INSERT INTO t VALUES ($1)", 3)
	if got := count(t, other); got != 0 {
		t.Fatalf("another connection sees %d rows before COMMIT", got)
	}
	if err := tx.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	if got := count(t, other); got != 3 {
		t.Fatalf("%d rows after COMMIT, want 3", got)
	}
	if trips.n != 3 {
		t.Fatalf("%d round trips for read, read, commit, want 3", trips.n)
	}
	if err := tx.Rollback(ctx); err != nil {
		t.Fatalf("Rollback after Commit: %v", err)
	}
}

// A queued write that fails fails the COMMIT it travels with, and nothing
// of the transaction stays; so does a rolled-back one.
func TestTxFailsWhole(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, pgtest.New(t, "pgbatch", migrate))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)

	tx := pgbatch.Begin(conn)
	if _, err := tx.Exec(ctx, "INSERT INTO t VALUES ($1)", 1); err != nil {
		t.Fatal(err)
	}
	tx.Later().Exec(ctx, "INSERT INTO t VALUES ($1)", 1) // duplicate key
	if err := tx.Commit(ctx); err == nil {
		t.Fatal("COMMIT with a failing queued write succeeded")
	}
	if err := tx.Rollback(ctx); err != nil {
		t.Fatal(err)
	}
	if conn.PgConn().TxStatus() != 'I' {
		// The caller's pool closes such a connection; here it means the
		// failed transaction was left open.
		t.Fatalf("connection left in transaction status %q", conn.PgConn().TxStatus())
	}
	if n := count(t, conn); n != 0 {
		t.Fatalf("%d rows after a failed transaction, want 0", n)
	}

	tx = pgbatch.Begin(conn)
	if _, err := tx.Exec(ctx, "INSERT INTO t VALUES ($1)", 5); err != nil {
		t.Fatal(err)
	}
	if err := tx.Rollback(ctx); err != nil {
		t.Fatal(err)
	}
	if n := count(t, conn); n != 0 {
		t.Fatalf("%d rows after a rollback, want 0", n)
	}
	if _, err := tx.Exec(ctx, "SELECT 1"); err != pgx.ErrTxClosed {
		t.Fatalf("Exec after Rollback: %v, want ErrTxClosed", err)
	}
}
