package pgtest_test

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/refbus/refbus/pkg/pgtest"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

var migrations atomic.Int32

func migrate(ctx context.Context, url string) error {
	migrations.Add(1)
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		return err
	}
	defer conn.Close(ctx)
	_, err = conn.Exec(ctx, "CREATE TABLE items (name text PRIMARY KEY)")
	return err
}

func connect(t *testing.T, url string) *pgx.Conn {
	t.Helper()
	conn, err := pgx.Connect(t.Context(), url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close(context.Background()) })
	return conn
}

func names(t *testing.T, conn *pgx.Conn) []string {
	t.Helper()
	rows, err := conn.Query(t.Context(), "SELECT name FROM items ORDER BY name")
	if err != nil {
		t.Fatal(err)
	}
	got, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		t.Fatal(err)
	}
	return got
}

func TestParallelTestsGetOwnDatabases(t *testing.T) {
	t.Run("group", func(t *testing.T) {
		for i := range 4 {
			t.Run(fmt.Sprint(i), func(t *testing.T) {
				t.Parallel()
				conn := connect(t, pgtest.New(t, "items", migrate))
				name := fmt.Sprint("item", i)
				if _, err := conn.Exec(t.Context(), "INSERT INTO items VALUES ($1)", name); err != nil {
					t.Fatal(err)
				}
				if got := names(t, conn); len(got) != 1 || got[0] != name {
					t.Fatalf("items = %v, want only %s", got, name)
				}
			})
		}
	})
	if n := migrations.Load(); n != 1 {
		t.Fatalf("migrate ran %d times, want once", n)
	}
}

func TestWritesAreIsolated(t *testing.T) {
	a := connect(t, pgtest.New(t, "items", migrate))
	b := connect(t, pgtest.New(t, "items", migrate))
	if _, err := a.Exec(t.Context(), "INSERT INTO items VALUES ('only-in-a')"); err != nil {
		t.Fatal(err)
	}
	if got := names(t, b); len(got) != 0 {
		t.Fatalf("second database sees %v written to the first", got)
	}
	if got := names(t, a); len(got) != 1 {
		t.Fatalf("first database has %v, want its own row", got)
	}
}

func TestNewCluster(t *testing.T) {
	c := pgtest.NewCluster(t)
	if c == pgtest.Cluster(t) {
		t.Fatal("NewCluster returned the shared cluster")
	}
	if err := c.Restart(t.Context()); err != nil {
		t.Fatal(err)
	}
	conn := connect(t, c.URL("postgres"))
	var one int
	if err := conn.QueryRow(t.Context(), "SELECT 1").Scan(&one); err != nil {
		t.Fatal(err)
	}
}
