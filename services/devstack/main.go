// Command devstack runs the whole of refbus on one machine, for `make run`:
// an embedded NATS server with JetStream, a private PostgreSQL cluster made
// from the local binaries, a node of each of the four kinds (nodes below),
// and demo referrals.
// Data lives under ./.data, so a second run finds it again.
package main

import (
	"bytes"
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

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nkeys"
	"golang.org/x/sync/errgroup"

	"github.com/refbus/refbus/pkg/bus"
	"github.com/refbus/refbus/pkg/event"
	"github.com/refbus/refbus/pkg/natslocal"
	"github.com/refbus/refbus/pkg/pglocal"
	"github.com/refbus/refbus/services/internal/core"
	"github.com/refbus/refbus/services/internal/core/app"
	"github.com/refbus/refbus/services/internal/core/web"
	"github.com/refbus/refbus/services/internal/network"
	"github.com/refbus/refbus/services/kinds"
)

// nodes are the demo network: one node of each kind, named after it,
// with its default HTTP port. The social node coordinates: it sees every
// overdue referral.
var nodes = []struct {
	name string
	port int
}{{"health", 8081}, {"education", 8082}, {"social", 8083}, {"ngo", 8084}}

// coordinator is the demo network's coordinating node.
const coordinator = "social"

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
	for _, nd := range nodes {
		env := "REFBUS_" + upper(nd.name) + "_ADDR"
		c.addrs[nd.name] = fs.String(nd.name, envOr(env, fmt.Sprintf("127.0.0.1:%d", nd.port)), fmt.Sprintf("HTTP address of the %s node (env %s)", nd.name, env))
	}
	return c, fs.Parse(args)
}

func run(ctx context.Context, log *slog.Logger, args []string) error {
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
	fmt.Printf("refbus: starting NATS (store %s) and Postgres (data %s)\n", filepath.Join(dataDir, "nats"), filepath.Join(dataDir, "pg"))
	ns, err := natslocal.Start(natslocal.Options{StoreDir: filepath.Join(dataDir, "nats"), Port: c.natsPort})
	if err != nil {
		return err
	}
	defer ns.Shutdown()
	pg, err := pglocal.Start(ctx, pglocal.Options{Dir: filepath.Join(dataDir, "pg"), Port: c.pgPort, Logger: log})
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

	key, err := networkKey(filepath.Join(dataDir, "network.key"))
	if err != nil {
		return err
	}
	seeds, trust, err := signingKeys(dataDir)
	if err != nil {
		return err
	}
	users, err := demoUsers(dataDir)
	if err != nil {
		return err
	}
	var names []string
	for _, nd := range nodes {
		names = append(names, nd.name)
	}
	if err := network.Setup(ctx, ns.ClientURL(), bus.StreamConfig{}, bus.ConsumerConfig{}, names, nats.Name("refbus-devstack")); err != nil {
		return err
	}
	svcs, apps, apiKeys := map[string]*core.Node{}, map[string]*app.App{}, map[string][]byte{}
	for _, nd := range nodes {
		a := nd.name
		if apiKeys[a], err = networkKey(filepath.Join(dataDir, "api-"+a+".key")); err != nil {
			return err
		}
		if err := pg.CreateDatabase(ctx, a, ""); err != nil {
			return err
		}
		ui := web.Mount(web.Config{APIKey: apiKeys[a], Logger: log})
		svc, err := core.New(ctx, core.Config{
			Node: a, HTTPAddr: *c.addrs[a], DatabaseURL: pg.URL(a), NATSURL: ns.ClientURL(), NetworkKey: key,
			SigningSeed: seeds[a], Trust: trust, Coordinator: coordinator, Web: ui,
		}, kinds.New(a), log)
		if err != nil {
			return err
		}
		defer svc.Close()
		svcs[a], apps[a] = svc, svc.App()
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
	fmt.Println("refbus is running. The nodes' APIs:")
	for _, nd := range nodes {
		fmt.Printf("  %-10s http://%s/api/v1/inbox   (OpenAPI: http://%s/docs)\n", nd.name, *c.addrs[nd.name], *c.addrs[nd.name])
	}
	fmt.Printf("  trust anchors of the nodes' signatures: %s (refbus-audit verify --trust)\n", filepath.Join(dataDir, "trust"))
	if err := printUsers(c.addrs, users, apiKeys); err != nil {
		return err
	}
	fmt.Printf("  NATS       %s\n  Postgres   %s (databases health, education, social, ngo)\n", ns.ClientURL(), pg.URL("health"))
	fmt.Println("Press Ctrl-C to stop.")
	err = g.Wait()
	fmt.Println("refbus: stopping")
	if err != nil && !errors.Is(err, context.Canceled) {
		return err
	}
	return nil
}

// networkKey reads the network key the nodes share to pseudonymise
// national ids, making one on the first run.
func networkKey(path string) ([]byte, error) {
	if b, err := os.ReadFile(path); err == nil {
		return hex.DecodeString(strings.TrimSpace(string(b)))
	}
	key := make([]byte, 32)
	if _, err := rand.Read(key); err != nil {
		return nil, err
	}
	if err := os.WriteFile(path, []byte(hex.EncodeToString(key)+"\n"), 0o600); err != nil {
		return nil, fmt.Errorf("write network key: %w", err)
	}
	return key, nil
}

// signingKeys reads each node's nkeys signing seed from
// dataDir/signing/<node>.nk, making those missing, and writes the trust
// anchors of all of them to dataDir/trust (node=PUBLICKEY lines), the file
// refbus-audit verify --trust reads.
func signingKeys(dataDir string) (map[string][]byte, event.Trust, error) {
	dir := filepath.Join(dataDir, "signing")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, nil, err
	}
	seeds, trust := map[string][]byte{}, event.Trust{}
	for _, nd := range nodes {
		a := nd.name
		path := filepath.Join(dir, a+".nk")
		seed, err := os.ReadFile(path)
		if errors.Is(err, os.ErrNotExist) {
			kp, err := nkeys.CreateAccount()
			if err != nil {
				return nil, nil, err
			}
			if seed, err = kp.Seed(); err != nil {
				return nil, nil, err
			}
			if err := os.WriteFile(path, append(seed, '\n'), 0o600); err != nil {
				return nil, nil, fmt.Errorf("write signing seed: %w", err)
			}
		} else if err != nil {
			return nil, nil, err
		}
		s, err := event.NewSigner(seed)
		if err != nil {
			return nil, nil, fmt.Errorf("%s: %w", path, err)
		}
		seeds[a], trust[a] = bytes.TrimSpace(seed), s.PublicKey()
	}
	anchors := "# node=public key of its signing seed (schemas/SIGNING.md)\n" + strings.ReplaceAll(trust.String(), ",", "\n") + "\n"
	if err := os.WriteFile(filepath.Join(dataDir, "trust"), []byte(anchors), 0o644); err != nil {
		return nil, nil, fmt.Errorf("write trust anchors: %w", err)
	}
	return seeds, trust, nil
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
