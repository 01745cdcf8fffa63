// Package pgtest gives tests throwaway PostgreSQL databases on a private
// cluster made from the local server binaries (see package pglocal). Import
// it only from _test.go files, and call Main from the package's TestMain so
// the shared cluster is stopped when the tests end:
//
//	func TestMain(m *testing.M) { pgtest.Main(m) }
//
// A test binary killed by -timeout cannot clean up and leaves its server
// running on a directory under os.TempDir.
package pgtest

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/refbus/refbus/pkg/pglocal"
)

// settings trade durability, which a throwaway cluster does not need, for
// speed; max_connections leaves room for many parallel tests with pools.
var settings = map[string]string{
	"fsync":              "off",
	"synchronous_commit": "off",
	"full_page_writes":   "off",
	"max_connections":    "400",
}

var (
	mainCalled atomic.Bool

	sharedMu  sync.Mutex
	shared    *instance
	sharedErr error

	templatesMu sync.Mutex
	templates   = map[string]*template{}

	// cloneMu serializes CREATE DATABASE ... TEMPLATE: concurrent copies of
	// one template can fail with "source database is being accessed by
	// other users".
	cloneMu sync.Mutex
	dbSeq   atomic.Int64

	// live holds every cluster this process started, so an interrupt can
	// stop them all.
	liveMu sync.Mutex
	live   = map[*instance]bool{}
)

// Main runs the tests of a package and stops the shared cluster afterwards.
// Use: func TestMain(m *testing.M) { pgtest.Main(m) }
func Main(m *testing.M) {
	mainCalled.Store(true)

	// pg_ctl detaches the server from the terminal, so Ctrl-C would kill
	// the tests but leave their servers running.
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, os.Interrupt, syscall.SIGTERM)
	go func() {
		s := <-sig
		fmt.Fprintf(os.Stderr, "pgtest: %v: stopping PostgreSQL\n", s)
		if err := stopAll(); err != nil {
			fmt.Fprintf(os.Stderr, "pgtest: %v\n", err)
		}
		os.Exit(1)
	}()

	code := m.Run()
	signal.Stop(sig)
	if err := stopAll(); err != nil {
		fmt.Fprintf(os.Stderr, "pgtest: %v\n", err)
		if code == 0 {
			code = 1
		}
	}
	os.Exit(code)
}

// Cluster returns the package-wide private cluster, started on first use in
// a fresh temporary directory with durability turned off, and stopped by
// Main.
func Cluster(t testing.TB) *pglocal.Cluster {
	t.Helper()
	if !mainCalled.Load() {
		t.Fatal("pgtest: TestMain must call pgtest.Main(m), which stops the shared cluster")
	}
	sharedMu.Lock()
	defer sharedMu.Unlock()
	if shared == nil && sharedErr == nil {
		// Not t.Context(): the cluster outlives this test.
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
		defer cancel()
		// A failed start is remembered so the remaining tests fail fast
		// instead of each waiting for its own failed initdb.
		shared, sharedErr = startInstance(ctx, settings)
	}
	if sharedErr != nil {
		t.Fatalf("pgtest: %v", sharedErr)
	}
	return shared.cluster
}

// New returns the URL of a fresh database for this test, cloned from the
// template database "tpl_"+name. The template is created once per process by
// calling migrate on it; migrate must be the same for every call with the
// same name. The clone is dropped when the test ends. New is safe to call
// from parallel tests.
func New(t testing.TB, name string, migrate func(ctx context.Context, url string) error) string {
	t.Helper()
	c := Cluster(t)
	ctx := t.Context()

	tpl, err := prepareTemplate(ctx, c, name, migrate)
	if err != nil {
		t.Fatalf("pgtest: %v", err)
	}
	db := dbName("t_", t.Name())
	cloneMu.Lock()
	err = c.CreateDatabase(ctx, db, tpl)
	cloneMu.Unlock()
	if err != nil {
		t.Fatalf("pgtest: %v", err)
	}
	t.Cleanup(func() {
		// t.Context() is already canceled when cleanups run.
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		if err := c.DropDatabase(ctx, db); err != nil {
			t.Errorf("pgtest: %v", err)
		}
	})
	return c.URL(db)
}

// NewCluster starts a cluster private to this test, for tests that stop,
// restart, kill (pglocal.Cluster.Kill) or otherwise break the server. It
// commits synchronously, so that a killed server loses no transaction it
// reported committed (fsync stays off: the kernel keeps what a killed
// process wrote). It is stopped when the test ends.
func NewCluster(t testing.TB) *pglocal.Cluster {
	t.Helper()
	s := maps.Clone(settings)
	s["synchronous_commit"] = "on"
	in, err := startInstance(t.Context(), s)
	if err != nil {
		t.Fatalf("pgtest: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		if err := in.stop(ctx); err != nil {
			t.Errorf("pgtest: %v", err)
		}
	})
	return in.cluster
}

// instance is a cluster together with the temporary directory it lives in.
type instance struct {
	cluster *pglocal.Cluster
	tmp     string
}

func startInstance(ctx context.Context, settings map[string]string) (*instance, error) {
	tmp, err := os.MkdirTemp("", "pgtest-")
	if err != nil {
		return nil, fmt.Errorf("start cluster: %w", err)
	}
	// MkdirTemp makes it 0700; when the tests run as root the server runs
	// as the postgres user, which must be able to reach the data directory.
	if err := os.Chmod(tmp, 0o755); err != nil {
		os.RemoveAll(tmp)
		return nil, fmt.Errorf("start cluster: %w", err)
	}
	c, err := pglocal.Start(ctx, pglocal.Options{
		Dir:      filepath.Join(tmp, "data"),
		Settings: maps.Clone(settings),
	})
	if err != nil {
		os.RemoveAll(tmp)
		return nil, fmt.Errorf("start cluster: %w", err)
	}
	in := &instance{cluster: c, tmp: tmp}
	liveMu.Lock()
	live[in] = true
	liveMu.Unlock()
	return in, nil
}

// stop stops the cluster and removes its directory. The directory is kept
// if the server may still be running, as it would be needed to stop it.
func (in *instance) stop(ctx context.Context) error {
	if err := in.cluster.Stop(ctx); err != nil {
		return fmt.Errorf("stop cluster in %s: %w", in.tmp, err)
	}
	liveMu.Lock()
	delete(live, in)
	liveMu.Unlock()
	if err := os.RemoveAll(in.tmp); err != nil {
		return fmt.Errorf("remove cluster directory: %w", err)
	}
	return nil
}

func stopAll() error {
	liveMu.Lock()
	instances := make([]*instance, 0, len(live))
	for in := range live {
		instances = append(instances, in)
	}
	liveMu.Unlock()

	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	var errs []error
	for _, in := range instances {
		errs = append(errs, in.stop(ctx))
	}
	return errors.Join(errs...)
}

// template records the outcome of building one template database; a failed
// migration is remembered so it is reported once per test, not rerun.
type template struct {
	mu   sync.Mutex
	done bool
	err  error
}

func prepareTemplate(ctx context.Context, c *pglocal.Cluster, name string, migrate func(ctx context.Context, url string) error) (string, error) {
	tpl := truncate("tpl_"+sanitize(name), 63)
	templatesMu.Lock()
	st := templates[tpl]
	if st == nil {
		st = &template{}
		templates[tpl] = st
	}
	templatesMu.Unlock()

	st.mu.Lock()
	defer st.mu.Unlock()
	if !st.done {
		st.err = buildTemplate(ctx, c, tpl, migrate)
		st.done = true
	}
	return tpl, st.err
}

func buildTemplate(ctx context.Context, c *pglocal.Cluster, tpl string, migrate func(ctx context.Context, url string) error) error {
	if err := c.CreateDatabase(ctx, tpl, ""); err != nil {
		return err
	}
	if err := migrate(ctx, c.URL(tpl)); err != nil {
		return fmt.Errorf("migrate %s: %w", tpl, err)
	}

	// CREATE DATABASE ... TEMPLATE fails while anyone is connected to the
	// template. Forbid new connections and end the ones migrate may have
	// left open (an unclosed pool, say), so cloning cannot fail later.
	conn, err := pgx.Connect(ctx, c.URL("postgres"))
	if err != nil {
		return fmt.Errorf("seal template %s: %w", tpl, err)
	}
	defer conn.Close(context.WithoutCancel(ctx))
	ident := pgx.Identifier{tpl}.Sanitize()
	if _, err := conn.Exec(ctx, "ALTER DATABASE "+ident+" WITH ALLOW_CONNECTIONS false"); err != nil {
		return fmt.Errorf("seal template %s: %w", tpl, err)
	}
	// CREATE DATABASE waits a few seconds for terminated sessions to go.
	_, err = conn.Exec(ctx, "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1", tpl)
	if err != nil {
		return fmt.Errorf("seal template %s: %w", tpl, err)
	}
	return nil
}

// dbName returns a database name unique within this process, recognizable as
// belonging to test, and within PostgreSQL's 63-byte limit.
func dbName(prefix, test string) string {
	suffix := "_" + strconv.FormatInt(dbSeq.Add(1), 10)
	return truncate(prefix+sanitize(test), 63-len(suffix)) + suffix
}

// sanitize maps s to lowercase letters, digits and single underscores, so the
// name needs no quoting when typed into psql while debugging.
func sanitize(s string) string {
	var b strings.Builder
	for _, r := range strings.ToLower(s) {
		switch {
		case r >= 'a' && r <= 'z', r >= '0' && r <= '9':
			b.WriteRune(r)
		case !strings.HasSuffix(b.String(), "_"):
			b.WriteByte('_')
		}
	}
	return strings.Trim(b.String(), "_")
}

func truncate(s string, n int) string {
	if len(s) > n {
		return s[:n]
	}
	return s
}
