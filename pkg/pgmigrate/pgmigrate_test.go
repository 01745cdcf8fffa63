package pgmigrate_test

import (
	"context"
	"sync"
	"testing"
	"testing/fstest"

	"github.com/jackc/pgx/v5"

	"github.com/refbus/refbus/pkg/pgmigrate"
	"github.com/refbus/refbus/pkg/pgtest"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

func empty(context.Context, string) error { return nil }

// Two lines: the second's migration uses the first's table, so it only
// works in the order given. The first takes a while, so that migrations
// run together overlap unless something keeps them apart.
var (
	first = pgmigrate.Line{Schema: "first", FS: fstest.MapFS{
		"00001_a.sql": {Data: []byte("-- +goose Up\nCREATE TABLE first.a (n int);\nSELECT pg_sleep(0.3);\n")},
		"00002_b.sql": {Data: []byte("-- +goose Up\nINSERT INTO first.a VALUES (1);\n")},
	}}
	second = pgmigrate.Line{Schema: "second", FS: fstest.MapFS{
		"00001_a.sql": {Data: []byte("-- +goose Up\nCREATE TABLE second.a AS SELECT n FROM first.a;\n")},
	}}
)

func connect(t *testing.T, url string) *pgx.Conn {
	t.Helper()
	conn, err := pgx.Connect(t.Context(), url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close(context.Background()) })
	return conn
}

// versions lists the versions a line's version table holds.
func versions(t *testing.T, conn *pgx.Conn, schema string) []int64 {
	t.Helper()
	rows, err := conn.Query(t.Context(), "SELECT version_id FROM "+pgx.Identifier{schema, "goose_db_version"}.Sanitize()+" WHERE version_id > 0 ORDER BY id")
	if err != nil {
		t.Fatal(err)
	}
	v, err := pgx.CollectRows(rows, pgx.RowTo[int64])
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// Each line gets its schema and a version table in it; a line with no
// files is skipped; running Up again changes nothing.
func TestUpLinesInOrderEachWithItsVersionTable(t *testing.T) {
	t.Parallel()
	url := pgtest.New(t, "pgmigrate_empty", empty)
	ctx := t.Context()
	for range 2 {
		if err := pgmigrate.Up(ctx, url, first, pgmigrate.Line{Schema: "none"}, second); err != nil {
			t.Fatal(err)
		}
	}
	conn := connect(t, url)
	if v := versions(t, conn, "first"); len(v) != 2 || v[0] != 1 || v[1] != 2 {
		t.Fatalf("first.goose_db_version holds %v, want [1 2]", v)
	}
	if v := versions(t, conn, "second"); len(v) != 1 || v[0] != 1 {
		t.Fatalf("second.goose_db_version holds %v, want [1]", v)
	}
	var n int
	if err := conn.QueryRow(ctx, "SELECT count(*) FROM second.a").Scan(&n); err != nil || n != 1 {
		t.Fatalf("second.a has %d rows (%v): the lines did not run in order, or twice", n, err)
	}
	var others int
	err := conn.QueryRow(ctx, `SELECT count(*) FROM pg_tables WHERE tablename = 'goose_db_version' AND schemaname NOT IN ('first', 'second')
		UNION ALL SELECT count(*) FROM pg_namespace WHERE nspname = 'none'`).Scan(&others)
	if err != nil || others != 0 {
		t.Fatalf("a version table or schema outside the lines' own (%d, %v)", others, err)
	}
}

// Services starting together migrate once: concurrent Ups of migrations
// that fail when run twice all succeed, and record each version once.
func TestUpConcurrentlyMigratesOnce(t *testing.T) {
	t.Parallel()
	url := pgtest.New(t, "pgmigrate_empty", empty)
	var wg sync.WaitGroup
	errs := make(chan error, 3)
	for range 3 {
		wg.Go(func() { errs <- pgmigrate.Up(context.Background(), url, first, second) })
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	conn := connect(t, url)
	if v := versions(t, conn, "first"); len(v) != 2 {
		t.Fatalf("first.goose_db_version holds %v, want each version once", v)
	}
}
