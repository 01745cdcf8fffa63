// Command devstack runs the whole of refbus on one machine, for `make run`:
// an embedded NATS server with JetStream in operator mode (no anonymous
// client), a private PostgreSQL cluster made from the local binaries, the
// demo networks of Kazakhstan and Kyrgyzstan (networks), each node with
// its own credentials and keys made as refbus-admin makes them, and demo
// referrals. Data lives under ./.data, so a second run finds it again;
// ./.data/admin is the administrator's directory (refbus-admin --dir).
package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/refbus/refbus/pkg/natslocal"
	"github.com/refbus/refbus/pkg/pglocal"
	"github.com/refbus/refbus/services/internal/admin"
	"github.com/refbus/refbus/services/internal/core"
	"github.com/refbus/refbus/services/internal/core/app"
	"github.com/refbus/refbus/services/internal/core/web"
	"github.com/refbus/refbus/services/kinds"
)

func main() {
	core.TuneGC()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	if err := run(ctx, log, os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "refbus:", err)
		os.Exit(1)
	}
}

type config struct {
	dataDir  string
	natsPort int
	pgPort   int
	addrs    map[string]*string
	demo     bool
}

func parseFlags(args []string) (config, error) {
	fs := flag.NewFlagSet("devstack", flag.ContinueOnError)
	c := config{addrs: map[string]*string{}}
	fs.StringVar(&c.dataDir, "data", envOr("REFBUS_DATA", ".data"), "directory for the NATS store and the Postgres cluster (env REFBUS_DATA)")
	fs.IntVar(&c.natsPort, "nats-port", envInt("REFBUS_NATS_PORT", 4222), "NATS port on 127.0.0.1 (env REFBUS_NATS_PORT)")
	fs.IntVar(&c.pgPort, "pg-port", envInt("REFBUS_PG_PORT", 5433), "Postgres port on 127.0.0.1 (env REFBUS_PG_PORT)")
	fs.BoolVar(&c.demo, "demo", true, "load the demo referrals on the first run")
	for _, n := range networks {
		for _, nd := range n.nodes {
			env := "REFBUS_" + upper(strings.ReplaceAll(nd.name, "-", "_")) + "_ADDR"
			c.addrs[nd.name] = fs.String(nd.name, envOr(env, fmt.Sprintf("127.0.0.1:%d", nd.port)), fmt.Sprintf("HTTP address of the node %s (env %s)", nd.name, env))
		}
	}
	return c, fs.Parse(args)
}

// secretFile reads the secret in file name of dir, made at random the
// first time. The directory is the user's alone (0700), the file too
// (0600); a file others may read is refused.
func secretFile(dir, name string) (string, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return "", err
	}
	if err := os.Chmod(dir, 0o700); err != nil {
		return "", err
	}
	path := filepath.Join(dir, name)
	if fi, err := os.Stat(path); err == nil {
		if fi.Mode().Perm()&0o077 != 0 {
			return "", fmt.Errorf("%s may be read by others (mode %v): make it 0600", path, fi.Mode().Perm())
		}
		b, err := os.ReadFile(path)
		return strings.TrimSpace(string(b)), err
	}
	b := make([]byte, 32)
	_, _ = rand.Read(b)
	secret := hex.EncodeToString(b)
	return secret, os.WriteFile(path, []byte(secret+"\n"), 0o600)
}

func run(ctx context.Context, log *slog.Logger, args []string) error {
	return runWith(ctx, log, args, nil)
}

// stack is what a running dev stack is made of, for its tests.
type stack struct {
	dataDir string
	natsURL string
	apps    map[string]*app.App
	pg      *pglocal.Cluster
}

// runWith is run, calling ready (if not nil) once every node runs and the
// demo is loaded.
func runWith(ctx context.Context, log *slog.Logger, args []string, ready func(*stack)) error {
	c, err := parseFlags(args)
	if err != nil {
		return err
	}
	dataDir, err := filepath.Abs(c.dataDir)
	if err != nil {
		return err
	}
	// The Postgres server runs as the postgres user when this runs as
	// root, and must be able to reach its data directory.
	if err := os.MkdirAll(dataDir, 0o755); err != nil {
		return err
	}
	if err := os.Chmod(dataDir, 0o755); err != nil {
		return err
	}
	adm, err := admin.Init(filepath.Join(dataDir, "admin"), "refbus-dev")
	if err != nil {
		return err
	}
	for _, n := range networks {
		if _, err := adm.Network(n.name); err != nil {
			if _, err := adm.CreateNetwork(n.name, n.settings); err != nil {
				return err
			}
		}
	}
	conf, err := adm.ServerConfig(filepath.Join(dataDir, "nats-jwt"))
	if err != nil {
		return err
	}
	confPath := filepath.Join(dataDir, "nats.conf")
	if err := os.WriteFile(confPath, conf, 0o600); err != nil {
		return err
	}
	// The JetStream store is encrypted, and Postgres asks for a password,
	// each kept in a file only this user reads.
	secrets := filepath.Join(dataDir, "secrets")
	storeKey, err := secretFile(secrets, "nats-store.key")
	if err != nil {
		return err
	}
	pgPassword, err := secretFile(secrets, "postgres.password")
	if err != nil {
		return err
	}
	fmt.Printf("refbus: starting NATS (store %s, encrypted, operator mode) and Postgres (data %s)\n", filepath.Join(dataDir, "nats"), filepath.Join(dataDir, "pg"))
	ns, err := natslocal.Start(natslocal.Options{StoreDir: filepath.Join(dataDir, "nats"), Port: c.natsPort, ConfigFile: confPath, StoreKey: storeKey})
	if err != nil {
		return err
	}
	defer ns.Shutdown()
	pg, err := pglocal.Start(ctx, pglocal.Options{Dir: filepath.Join(dataDir, "pg"), Port: c.pgPort, Password: pgPassword, Logger: log})
	if err != nil {
		return err
	}
	defer func() {
		sctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if err := pg.Stop(sctx); err != nil {
			fmt.Fprintln(os.Stderr, "refbus: stop postgres:", err)
		}
	}()
	users, err := demoUsers(dataDir)
	if err != nil {
		return err
	}

	url := ns.ClientURL()
	svcs, apps, apiKeys := map[string]*core.Node{}, map[string]*app.App{}, map[string][]byte{}
	for _, dn := range networks {
		n, err := adm.Network(dn.name)
		if err != nil {
			return err
		}
		if err := n.Provision(ctx, url); err != nil {
			return err
		}
		for _, nd := range dn.nodes {
			b, err := n.AddNode(ctx, url, admin.NodeSpec{Name: nd.name, Kind: nd.kind, Organizations: nd.orgIDs()})
			if err != nil {
				return err
			}
			if apiKeys[nd.name], err = admin.APIKey(b); err != nil {
				return err
			}
			db := strings.ReplaceAll(nd.name, "-", "_")
			if err := pg.CreateDatabase(ctx, db, ""); err != nil {
				return err
			}
			cfg := core.ConfigFrom(func(k string) string { return b.Env[k] }, nd.kind)
			cfg.HTTPAddr, cfg.DatabaseURL, cfg.NATSURL = *c.addrs[nd.name], pg.URL(db), url
			if cfg.Organizations, err = nd.organizations(); err != nil {
				return err
			}
			loc, err := time.LoadLocation(dn.settings.TimeZone)
			if err != nil {
				return err
			}
			cfg.Web = web.Mount(web.Config{APIKey: apiKeys[nd.name], Logger: log, Lang: dn.settings.Language, Location: loc})
			svc, err := core.New(ctx, cfg, kinds.New(nd.kind), log)
			if err != nil {
				return err
			}
			defer svc.Close()
			svcs[nd.name], apps[nd.name] = svc, svc.App()
		}
	}
	if err := seedUsers(ctx, apps, users); err != nil {
		return err
	}

	g, gctx := errgroup.WithContext(ctx)
	for _, svc := range svcs {
		g.Go(func() error { return svc.Run(gctx) })
	}
	if c.demo {
		if err := loadDemo(gctx, apps); err != nil {
			return fmt.Errorf("demo data: %w", err)
		}
	}
	fmt.Println()
	fmt.Println("refbus is running: two networks, each node with its own NATS credentials (no anonymous client).")
	if err := printUsers(c.addrs, users, apiKeys); err != nil {
		return err
	}
	fmt.Printf("  NATS       %s (operator mode; credentials in %s; store key in %s)\n", url, filepath.Join(dataDir, "admin"), filepath.Join(secrets, "nats-store.key"))
	fmt.Printf("  Postgres   postgres://postgres@127.0.0.1:%d/kz_health (one database per node; password in %s)\n", pg.Port(), filepath.Join(secrets, "postgres.password"))
	fmt.Printf("  refbus-admin --dir %s --url %s network list kz\n", filepath.Join(dataDir, "admin"), url)
	fmt.Println("Press Ctrl-C to stop.")
	if ready != nil {
		ready(&stack{dataDir: dataDir, natsURL: url, apps: apps, pg: pg})
	}
	err = g.Wait()
	fmt.Println("refbus: stopping")
	if err != nil && !errors.Is(err, context.Canceled) {
		return err
	}
	return nil
}

func envOr(key, def string) string {
	if v := os.Getenv(key); v != "" {
		return v
	}
	return def
}

func envInt(key string, def int) int {
	var n int
	if _, err := fmt.Sscan(os.Getenv(key), &n); err == nil {
		return n
	}
	return def
}

func upper(s string) string {
	b := []byte(s)
	for i, c := range b {
		if 'a' <= c && c <= 'z' {
			b[i] = c - 32
		}
	}
	return string(b)
}
