package pglocal_test

import (
	"context"
	"errors"
	"log/slog"
	"net/url"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/refbus/refbus/pkg/pglocal"
	"github.com/refbus/refbus/pkg/poll"
)

// tempDir returns a directory the postgres user can enter even when the test
// runs as root (t.TempDir is 0700).
func tempDir(t *testing.T) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "pglocal-test-")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	return dir
}

func start(t *testing.T, dir string) *pglocal.Cluster {
	t.Helper()
	c, err := pglocal.Start(t.Context(), pglocal.Options{
		Dir:      dir,
		Settings: map[string]string{"fsync": "off"},
		Logger:   slog.New(slog.NewTextHandler(t.Output(), nil)),
	})
	if err != nil {
		t.Fatal(err)
	}
	// Registered after tempDir's cleanup, so it runs before the directory
	// is removed. Stop is a no-op for clusters the test already stopped.
	t.Cleanup(func() {
		if err := c.Stop(context.Background()); err != nil {
			t.Error(err)
		}
	})
	return c
}

func queryNote(t *testing.T, c *pglocal.Cluster) string {
	t.Helper()
	conn, err := pgx.Connect(t.Context(), c.URL("app"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	var note string
	if err := conn.QueryRow(t.Context(), "SELECT note FROM notes").Scan(&note); err != nil {
		t.Fatal(err)
	}
	return note
}

func TestDataSurvivesStopAndRestart(t *testing.T) {
	ctx := t.Context()
	dir := filepath.Join(tempDir(t), "data")

	c := start(t, dir)
	if err := c.CreateDatabase(ctx, "app", ""); err != nil {
		t.Fatal(err)
	}
	if err := c.CreateDatabase(ctx, "app", ""); err != nil {
		t.Fatalf("second CreateDatabase should be a no-op: %v", err)
	}
	conn, err := pgx.Connect(ctx, c.URL("app"))
	if err != nil {
		t.Fatal(err)
	}
	_, err = conn.Exec(ctx, "CREATE TABLE notes (note text); INSERT INTO notes VALUES ('kept')")
	conn.Close(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	if err := c.Stop(ctx); err != nil {
		t.Fatalf("Stop of a stopped cluster: %v", err)
	}

	c = start(t, dir)
	if got := queryNote(t, c); got != "kept" {
		t.Fatalf("after new Start: note = %q, want %q", got, "kept")
	}

	port := c.Port()
	if err := c.Restart(ctx); err != nil {
		t.Fatal(err)
	}
	if c.Port() != port {
		t.Fatalf("Restart moved the port from %d to %d", port, c.Port())
	}
	if got := queryNote(t, c); got != "kept" {
		t.Fatalf("after Restart: note = %q, want %q", got, "kept")
	}

	if err := c.DropDatabase(ctx, "app"); err != nil {
		t.Fatal(err)
	}
	if err := c.DropDatabase(ctx, "app"); err != nil {
		t.Fatalf("DropDatabase of a missing database: %v", err)
	}
	if conn, err := pgx.Connect(ctx, c.URL("app")); err == nil {
		conn.Close(ctx)
		t.Fatal("connected to a dropped database")
	}
}

// TestStartTakesOverLeftoverServer simulates a dev stack that was killed
// without stopping its server: the next Start must still succeed.
func TestStartTakesOverLeftoverServer(t *testing.T) {
	dir := filepath.Join(tempDir(t), "data")
	leftover := start(t, dir)

	c := start(t, dir)
	conn, err := pgx.Connect(t.Context(), c.URL("postgres"))
	if err != nil {
		t.Fatal(err)
	}
	conn.Close(t.Context())

	if leftover.Port() != c.Port() {
		if conn, err := pgx.Connect(t.Context(), leftover.URL("postgres")); err == nil {
			conn.Close(t.Context())
			t.Fatal("the leftover server still accepts connections")
		}
	}
}

// TestStartAfterServerWasKilled covers a server that died without cleaning
// up (OOM killer, kill -9): its postmaster.pid is left behind.
func TestStartAfterServerWasKilled(t *testing.T) {
	dir := filepath.Join(tempDir(t), "data")
	start(t, dir)
	pidFile, err := os.ReadFile(filepath.Join(dir, "postmaster.pid"))
	if err != nil {
		t.Fatal(err)
	}
	pid, err := strconv.Atoi(strings.SplitN(string(pidFile), "\n", 2)[0])
	if err != nil {
		t.Fatal(err)
	}
	p, err := os.FindProcess(pid)
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Kill(); err != nil {
		t.Fatal(err)
	}

	c := start(t, dir)
	conn, err := pgx.Connect(t.Context(), c.URL("postgres"))
	if err != nil {
		t.Fatal(err)
	}
	conn.Close(t.Context())
}

func TestStartWithoutBinaries(t *testing.T) {
	_, err := pglocal.Start(t.Context(), pglocal.Options{Dir: t.TempDir(), BinDir: t.TempDir()})
	if err == nil || !errors.Is(err, pglocal.ErrNoBinaries) {
		t.Fatalf("err = %v, want ErrNoBinaries", err)
	}
}

// Kill is a real crash: the postmaster dies by SIGKILL with a client in
// the middle of a transaction, and the next start recovers from the WAL:
// what was committed is there, what was not is gone.
func TestKillThenRestartRecovers(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("Kill is implemented on Linux only")
	}
	ctx := t.Context()
	dir := filepath.Join(tempDir(t), "data")
	c, err := pglocal.Start(ctx, pglocal.Options{Dir: dir, Settings: map[string]string{"fsync": "off"}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := c.Stop(context.Background()); err != nil {
			t.Error(err)
		}
	})
	conn, err := pgx.Connect(ctx, c.URL("postgres"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	if _, err := conn.Exec(ctx, "CREATE TABLE notes (note text); INSERT INTO notes VALUES ('committed')"); err != nil {
		t.Fatal(err)
	}
	tx, err := conn.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tx.Exec(ctx, "INSERT INTO notes VALUES ('open')"); err != nil {
		t.Fatal(err)
	}

	if err := c.Kill(ctx); err != nil {
		t.Fatal(err)
	}
	// The client may hear of it a moment after the processes are gone.
	poll.Until(t, 10*time.Second, func() error {
		if err := conn.Ping(ctx); err == nil {
			return errors.New("the connection of a killed server still answers")
		}
		return nil
	})
	if err := c.Restart(ctx); err != nil {
		t.Fatal(err)
	}
	conn2, err := pgx.Connect(ctx, c.URL("postgres"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn2.Close(context.Background())
	rows, err := conn2.Query(ctx, "SELECT note FROM notes ORDER BY note")
	if err != nil {
		t.Fatal(err)
	}
	notes, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		t.Fatal(err)
	}
	if len(notes) != 1 || notes[0] != "committed" {
		t.Fatalf("after the crash the table holds %q, want only the committed note", notes)
	}
	log, err := os.ReadFile(filepath.Join(dir, "server.log"))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(log), "automatic recovery in progress") {
		t.Fatalf("the server did not recover from a crash; its log:\n%s", log)
	}
}

// A cluster that trusted every connection asks each for the password
// once it is started with one, and keeps asking after a restart: a
// connection without it, or with another, is refused.
func TestPasswordRequired(t *testing.T) {
	dir := tempDir(t)
	c := start(t, dir)
	if err := c.Stop(t.Context()); err != nil {
		t.Fatal(err)
	}
	const password = "correct-horse-battery-staple"
	c, err := pglocal.Start(t.Context(), pglocal.Options{Dir: dir, Password: password, Settings: map[string]string{"fsync": "off"}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Stop(context.Background()) })
	for round := range 2 {
		if conn, err := pgx.Connect(t.Context(), c.URL("postgres")); err != nil {
			t.Fatalf("round %d: with the password: %v", round, err)
		} else {
			conn.Close(context.Background())
		}
		for _, bad := range []string{
			strings.Replace(c.URL("postgres"), url.UserPassword("postgres", password).String(), "postgres", 1),
			strings.Replace(c.URL("postgres"), password, "wrong", 1),
		} {
			if bad == c.URL("postgres") {
				t.Fatalf("the URL was not changed: %s", bad)
			}
			if conn, err := pgx.Connect(t.Context(), bad); err == nil {
				conn.Close(context.Background())
				t.Fatalf("round %d: connected without the password", round)
			} else if !strings.Contains(err.Error(), "password") {
				t.Fatalf("round %d: refused, but not for the password: %v", round, err)
			}
		}
		if err := c.Restart(t.Context()); err != nil {
			t.Fatal(err)
		}
	}
}
