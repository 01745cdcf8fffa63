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
