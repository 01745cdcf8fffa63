// Package pglocal runs a private PostgreSQL cluster made from the server
// binaries installed on the machine. The dev stack keeps one in a fixed data
// directory across runs; package pgtest starts throwaway ones for tests.
//
// The cluster listens only on 127.0.0.1. Given a password (Options.Password)
// it asks every connection for it (SCRAM-SHA-256), as the dev stack's does;
// without one it trusts every connection, for tests.
package pglocal

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"maps"
	"net"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// ErrNoBinaries is returned by Start when initdb and pg_ctl cannot be found.
var ErrNoBinaries = errors.New("postgresql server binaries (initdb, pg_ctl, postgres) not found: " +
	"on Debian/Ubuntu run `apt-get install postgresql-15` (or `postgresql`); " +
	"otherwise install PostgreSQL 15+ server binaries and set PG_BIN to the directory holding initdb and pg_ctl")

// defaultBinDir is where Debian/Ubuntu's postgresql-15 package puts the
// server binaries, which are deliberately not on PATH there.
const defaultBinDir = "/usr/lib/postgresql/15/bin"

// Options configures Start.
type Options struct {
	// Dir is the data directory. It is created and initialized with initdb
	// if it is missing or empty, and reused as it is otherwise.
	Dir string
	// Port is the TCP port on 127.0.0.1; 0 picks a free port.
	Port int
	// BinDir holds initdb, pg_ctl and postgres. Empty means $PG_BIN if set,
	// else /usr/lib/postgresql/15/bin if it exists, else `pg_config --bindir`,
	// else the directory of initdb on PATH, else the newest
	// /usr/lib/postgresql/*/bin.
	BinDir string
	// Settings are extra server settings, passed as -c name=value (for
	// example fsync=off for tests). max_connections defaults to 300.
	// listen port and socket directory are always set by the cluster.
	Settings map[string]string
	// Password, if set, is the superuser's: every connection must give
	// it (SCRAM-SHA-256). A cluster that trusted connections before is
	// switched over when it starts. Empty: every local connection is
	// trusted (tests).
	Password string
	// Logger receives progress messages; nil discards them.
	Logger *slog.Logger
}

// Cluster is a PostgreSQL cluster started by Start. Its methods are safe for
// concurrent use.
type Cluster struct {
	dir      string
	binDir   string
	logFile  string
	port     int
	settings map[string]string
	password string
	acct     *account
	log      *slog.Logger

	// mu serializes Stop and Restart so they cannot interleave their pg_ctl calls.
	mu sync.Mutex
}

// Start initializes the data directory if needed and starts the server on
// 127.0.0.1. A server left running on the same directory by an earlier,
// killed process is stopped first, so the returned cluster always runs with
// o's settings.
func Start(ctx context.Context, o Options) (*Cluster, error) {
	if o.Dir == "" {
		return nil, errors.New("start postgres: Options.Dir is empty")
	}
	dir, err := filepath.Abs(o.Dir)
	if err != nil {
		return nil, fmt.Errorf("start postgres: %w", err)
	}
	binDir, err := findBinDir(ctx, o.BinDir)
	if err != nil {
		return nil, err
	}
	acct, err := serverAccount()
	if err != nil {
		return nil, fmt.Errorf("start postgres: %w", err)
	}
	log := o.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	c := &Cluster{
		dir:      dir,
		binDir:   binDir,
		logFile:  filepath.Join(dir, "server.log"),
		settings: maps.Clone(o.Settings),
		password: o.Password,
		acct:     acct,
		log:      log.With("pgdata", dir),
	}
	if err := c.initDir(ctx); err != nil {
		return nil, err
	}
	running, err := c.status(ctx)
	if err != nil {
		return nil, err
	}
	if running {
		c.log.Warn("stopping postgres left running by an earlier process")
		if err := c.stop(ctx); err != nil {
			return nil, err
		}
	}

	// A port picked by freePort can be taken by someone else before
	// postgres binds it; picking another one is cheaper than failing CI.
	const attempts = 3
	for i := 1; ; i++ {
		c.port = o.Port
		if c.port == 0 {
			if c.port, err = freePort(); err != nil {
				return nil, err
			}
		}
		err = c.start(ctx)
		if err == nil {
			if err := c.requirePassword(ctx); err != nil {
				c.stopQuietly(ctx)
				return nil, err
			}
			return c, nil
		}
		if o.Port != 0 || i == attempts || !errors.Is(err, errPortInUse) {
			return nil, err
		}
		c.log.Warn("port taken before postgres could bind it; trying another", "port", c.port)
	}
}

// Dir returns the cluster's data directory.
func (c *Cluster) Dir() string { return c.dir }

// Port returns the TCP port the server listens on.
func (c *Cluster) Port() int { return c.port }

// URL returns a connection URL for database db as the superuser postgres,
// with its password if the cluster has one.
func (c *Cluster) URL(db string) string {
	user := "postgres"
	if c.password != "" {
		user = url.UserPassword("postgres", c.password).String()
	}
	return fmt.Sprintf("postgres://%s@127.0.0.1:%d/%s?sslmode=disable", user, c.port, url.PathEscape(db))
}

// Dump returns database db as pg_dump writes it in plain SQL: what a
// backup of it holds.
func (c *Cluster) Dump(ctx context.Context, db string) ([]byte, error) {
	cmd := exec.CommandContext(ctx, filepath.Join(c.binDir, "pg_dump"), "--dbname", c.URL(db))
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return nil, fmt.Errorf("pg_dump %s: %w: %s", db, err, stderr.String())
	}
	return out, nil
}

// hbaSCRAM is the pg_hba.conf of a cluster with a password.
const hbaSCRAM = `# Written by refbus pglocal: every connection gives the password.
local all all scram-sha-256
host  all all 127.0.0.1/32 scram-sha-256
host  all all ::1/128 scram-sha-256
`

// requirePassword sets the superuser's password and makes the server ask
// every connection for it, unless it does already or the cluster has no
// password.
func (c *Cluster) requirePassword(ctx context.Context) error {
	if c.password == "" {
		return nil
	}
	hba := filepath.Join(c.dir, "pg_hba.conf")
	if b, err := os.ReadFile(hba); err == nil && string(b) == hbaSCRAM {
		return nil
	}
	conn, err := pgx.Connect(ctx, c.URL("postgres"))
	if err != nil {
		return fmt.Errorf("set the postgres password: %w", err)
	}
	defer conn.Close(context.WithoutCancel(ctx))
	// PostgreSQL 15 keeps it as a SCRAM-SHA-256 verifier.
	if _, err := conn.Exec(ctx, "ALTER ROLE postgres PASSWORD "+quoteLiteral(c.password)); err != nil {
		return fmt.Errorf("set the postgres password: %w", err)
	}
	if err := os.WriteFile(hba, []byte(hbaSCRAM), 0o600); err != nil {
		return fmt.Errorf("require the password: %w", err)
	}
	if _, err := conn.Exec(ctx, "SELECT pg_reload_conf()"); err != nil {
		return fmt.Errorf("require the password: %w", err)
	}
	c.log.Info("postgres asks every connection for its password (scram-sha-256)")
	return nil
}

// quoteLiteral quotes s as an SQL string literal.
func quoteLiteral(s string) string { return "'" + strings.ReplaceAll(s, "'", "''") + "'" }

// CreateDatabase creates database name as a copy of template ("" means the
// server's default, template1). It does nothing if the database exists.
func (c *Cluster) CreateDatabase(ctx context.Context, name, template string) error {
	conn, err := pgx.Connect(ctx, c.URL("postgres"))
	if err != nil {
		return fmt.Errorf("create database %s: %w", name, err)
	}
	defer conn.Close(context.WithoutCancel(ctx))

	var exists bool
	err = conn.QueryRow(ctx, "SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)", name).Scan(&exists)
	if err != nil {
		return fmt.Errorf("create database %s: %w", name, err)
	}
	if exists {
		return nil
	}
	sql := "CREATE DATABASE " + pgx.Identifier{name}.Sanitize()
	if template != "" {
		sql += " TEMPLATE " + pgx.Identifier{template}.Sanitize()
	}
	if _, err := conn.Exec(ctx, sql); err != nil {
		var pgErr *pgconn.PgError
		if errors.As(err, &pgErr) && pgErr.Code == "42P04" {
			// duplicate_database: a concurrent caller won the race, which
			// is the outcome we wanted anyway.
			return nil
		}
		return fmt.Errorf("create database %s: %w", name, err)
	}
	return nil
}

// DropDatabase drops database name, disconnecting its sessions first. It does
// nothing if the database does not exist.
func (c *Cluster) DropDatabase(ctx context.Context, name string) error {
	conn, err := pgx.Connect(ctx, c.URL("postgres"))
	if err != nil {
		return fmt.Errorf("drop database %s: %w", name, err)
	}
	defer conn.Close(context.WithoutCancel(ctx))

	if _, err := conn.Exec(ctx, "DROP DATABASE IF EXISTS "+pgx.Identifier{name}.Sanitize()+" WITH (FORCE)"); err != nil {
		return fmt.Errorf("drop database %s: %w", name, err)
	}
	return nil
}

// Stop shuts the server down with pg_ctl stop -m fast, which disconnects
// clients and rolls back their transactions. It does nothing if the server
// is not running.
func (c *Cluster) Stop(ctx context.Context) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	running, err := c.status(ctx)
	if err != nil || !running {
		return err
	}
	return c.stop(ctx)
}

// Restart stops the server and starts it again on the same port and data
// directory, so clients see a server outage but no data loss.
func (c *Cluster) Restart(ctx context.Context) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	running, err := c.status(ctx)
	if err != nil {
		return err
	}
	if running {
		if err := c.stop(ctx); err != nil {
			return err
		}
	}
	return c.start(ctx)
}

// initDir runs initdb unless the data directory already holds a cluster.
func (c *Cluster) initDir(ctx context.Context) error {
	if c.acct != nil {
		// Check before anything else: a parent the server account cannot
		// enter otherwise surfaces as an obscure permission error deep in
		// initdb or postgres.
		if err := c.acct.checkCanEnter(filepath.Dir(c.dir)); err != nil {
			return fmt.Errorf("prepare %s: %w", c.dir, err)
		}
	}
	_, err := os.Stat(filepath.Join(c.dir, "PG_VERSION"))
	if err == nil {
		return nil
	}
	if !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("inspect data directory: %w", err)
	}

	created, err := mkdirAll(c.dir)
	if err != nil {
		return fmt.Errorf("create data directory: %w", err)
	}
	if c.acct != nil {
		// Under a restrictive umask the new parents would be closed to the
		// server account; initdb tightens the data directory itself to 0700.
		for _, d := range created {
			if err := os.Chmod(d, 0o755); err != nil {
				return fmt.Errorf("create data directory: %w", err)
			}
		}
		if err := c.acct.chown(c.dir); err != nil {
			return fmt.Errorf("create data directory: %w", err)
		}
	}

	args := []string{"-D", c.dir, "-A", "trust", "-U", "postgres", "-E", "UTF8", "--locale=C"}
	if c.settings["fsync"] == "off" {
		// Whoever turns fsync off does not care about durability, and
		// syncing a fresh cluster costs seconds on slow CI disks.
		args = append(args, "--no-sync")
	}
	c.log.Info("initializing postgres data directory")
	if out, err := c.run(ctx, "initdb", args...); err != nil {
		return fmt.Errorf("initdb: %w\n%s", err, out)
	}
	return nil
}

// errPortInUse marks a start that failed because the port was taken.
var errPortInUse = errors.New("port already in use")

// start runs pg_ctl start and waits until the server accepts connections.
func (c *Cluster) start(ctx context.Context) error {
	var logOffset int64
	if fi, err := os.Stat(c.logFile); err == nil {
		logOffset = fi.Size()
	}
	c.log.Info("starting postgres", "port", c.port, "log", c.logFile)
	out, err := c.run(ctx, "pg_ctl", "start", "-w", "-t", "120", "-D", c.dir, "-l", c.logFile, "-o", c.serverOptions())
	if err != nil {
		tail := c.logTail(logOffset)
		err = fmt.Errorf("pg_ctl start: %w\n%s\nserver log %s:\n%s", err, out, c.logFile, tail)
		if strings.Contains(tail, "Address already in use") {
			err = fmt.Errorf("%w: %w", errPortInUse, err)
		}
		// pg_ctl gives up after its timeout but leaves a slow postmaster
		// running; stop it so a failed Start leaks no process.
		c.stopQuietly(ctx)
		return err
	}
	if err := c.waitReady(ctx); err != nil {
		c.stopQuietly(ctx)
		return fmt.Errorf("%w\nserver log %s:\n%s", err, c.logFile, c.logTail(logOffset))
	}
	return nil
}

// waitReady returns once a client can connect: pg_ctl -w only waits for the
// postmaster to report itself ready, not for TCP connections to succeed.
func (c *Cluster) waitReady(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	for {
		conn, err := pgx.Connect(ctx, c.URL("postgres"))
		if err == nil {
			return conn.Close(ctx)
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("connect to postgres on port %d: %w", c.port, err)
		case <-time.After(100 * time.Millisecond):
		}
	}
}

func (c *Cluster) stop(ctx context.Context) error {
	c.log.Info("stopping postgres")
	out, err := c.run(ctx, "pg_ctl", "stop", "-w", "-t", "120", "-D", c.dir, "-m", "fast")
	if err == nil {
		return nil
	}
	// A postmaster that dies without removing postmaster.pid (SIGKILL, the
	// OOM killer) makes pg_ctl report "server does not shut down", although
	// nothing runs any more and the next start will succeed.
	if running, serr := c.status(ctx); serr == nil && !running {
		return nil
	}
	return fmt.Errorf("pg_ctl stop: %w\n%s", err, out)
}

// stopQuietly stops the server if it runs, for cleanup after a failure that
// is already being reported.
func (c *Cluster) stopQuietly(ctx context.Context) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Minute)
	defer cancel()
	if running, err := c.status(ctx); err == nil && running {
		if err := c.stop(ctx); err != nil {
			c.log.Error("stop postgres after failed start", "err", err)
		}
	}
}

// status reports whether a postmaster is running on the data directory.
func (c *Cluster) status(ctx context.Context) (bool, error) {
	out, err := c.run(ctx, "pg_ctl", "status", "-D", c.dir)
	if err == nil {
		return true, nil
	}
	// pg_ctl status exits 3 when no server runs, including when only a
	// stale postmaster.pid of a dead process is left.
	var exitErr *exec.ExitError
	if errors.As(err, &exitErr) && exitErr.ExitCode() == 3 {
		return false, nil
	}
	return false, fmt.Errorf("pg_ctl status: %w\n%s", err, out)
}

// serverOptions is the -o argument of pg_ctl start. pg_ctl hands it to
// /bin/sh, hence the quoting.
func (c *Cluster) serverOptions() string {
	settings := map[string]string{
		"listen_addresses": "127.0.0.1",
		"max_connections":  "300",
	}
	maps.Copy(settings, c.settings)
	settings["port"] = strconv.Itoa(c.port)
	settings["unix_socket_directories"] = c.socketDir()

	var b strings.Builder
	for _, k := range slices.Sorted(maps.Keys(settings)) {
		if b.Len() > 0 {
			b.WriteByte(' ')
		}
		b.WriteString("-c ")
		b.WriteString(shellQuote(k + "=" + settings[k]))
	}
	return b.String()
}

// socketDir keeps the Unix socket inside the data directory, where the server
// account can always write and it cannot clash with a system server's
// socket in /var/run/postgresql. Socket paths are limited to about 100 bytes;
// beyond that the socket is disabled, as every client here uses TCP anyway.
func (c *Cluster) socketDir() string {
	if len(c.dir)+len("/.s.PGSQL.65535") >= 100 {
		return ""
	}
	return c.dir
}

// logTail returns the last lines the server logged after offset.
func (c *Cluster) logTail(offset int64) string {
	data, err := os.ReadFile(c.logFile)
	if err != nil {
		return fmt.Sprintf("(cannot read server log: %v)", err)
	}
	if offset <= int64(len(data)) {
		data = data[offset:]
	}
	lines := strings.Split(strings.TrimRight(string(data), "\n"), "\n")
	if len(lines) > 30 {
		lines = lines[len(lines)-30:]
	}
	return strings.Join(lines, "\n")
}

// run runs a binary from the PostgreSQL bin directory as the server account
// and returns its combined output.
func (c *Cluster) run(ctx context.Context, name string, args ...string) ([]byte, error) {
	cmd := exec.CommandContext(ctx, filepath.Join(c.binDir, name), args...)
	// The server account may not be allowed into the caller's working
	// directory, and the PostgreSQL tools fail to locate their own
	// executable when they cannot resolve it.
	cmd.Dir = "/"
	cmd.WaitDelay = 10 * time.Second
	c.acct.setCredential(cmd)
	c.log.Debug("run", "cmd", cmd.String())
	out, err := cmd.CombinedOutput()
	return bytes.TrimSpace(out), err
}

// findBinDir returns the directory holding the server binaries.
func findBinDir(ctx context.Context, dir string) (string, error) {
	if dir == "" {
		dir = os.Getenv("PG_BIN")
	}
	if dir != "" {
		// An explicit choice is not second-guessed with fallbacks.
		if !hasBinaries(dir) {
			return "", fmt.Errorf("%w (looked in %s)", ErrNoBinaries, dir)
		}
		return dir, nil
	}

	candidates := []string{defaultBinDir}
	if out, err := exec.CommandContext(ctx, "pg_config", "--bindir").Output(); err == nil {
		candidates = append(candidates, strings.TrimSpace(string(out)))
	}
	if p, err := exec.LookPath("initdb"); err == nil {
		candidates = append(candidates, filepath.Dir(p))
	}
	// Newer Debian/Ubuntu releases ship another major version, and neither
	// put initdb on PATH nor always install pg_config.
	candidates = append(candidates, debianBinDirs()...)
	for _, d := range candidates {
		if hasBinaries(d) {
			return d, nil
		}
	}
	return "", fmt.Errorf("%w (looked in %s)", ErrNoBinaries, strings.Join(slices.Compact(candidates), ", "))
}

// debianBinDirs returns /usr/lib/postgresql/N/bin directories, newest first.
func debianBinDirs() []string {
	dirs, _ := filepath.Glob("/usr/lib/postgresql/*/bin")
	version := func(d string) float64 {
		v, _ := strconv.ParseFloat(filepath.Base(filepath.Dir(d)), 64)
		return v
	}
	slices.SortFunc(dirs, func(a, b string) int {
		switch va, vb := version(a), version(b); {
		case va > vb:
			return -1
		case va < vb:
			return 1
		}
		return 0
	})
	return dirs
}

func hasBinaries(dir string) bool {
	for _, name := range []string{"initdb", "pg_ctl", "postgres"} {
		fi, err := os.Stat(filepath.Join(dir, name))
		if err != nil || fi.IsDir() || fi.Mode().Perm()&0o111 == 0 {
			return false
		}
	}
	return true
}

// mkdirAll is os.MkdirAll that also returns the directories it created,
// outermost first.
func mkdirAll(dir string) ([]string, error) {
	var missing []string
	for d := dir; ; d = filepath.Dir(d) {
		_, err := os.Stat(d)
		if err == nil {
			break
		}
		if !errors.Is(err, fs.ErrNotExist) {
			return nil, err
		}
		missing = append(missing, d)
		if filepath.Dir(d) == d {
			break
		}
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	slices.Reverse(missing)
	return missing, nil
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("find free port: %w", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

func shellQuote(s string) string {
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}
