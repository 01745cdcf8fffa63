package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"os"
	"path/filepath"
	"runtime/pprof"
	"sync"
	"time"

	"github.com/refbus/refbus/services/internal/network"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/nats-io/nats-server/v2/server"
	"golang.org/x/sync/errgroup"

	"github.com/refbus/refbus/pkg/bus"
	"github.com/refbus/refbus/pkg/natslocal"
	"github.com/refbus/refbus/pkg/pglocal"
	"github.com/refbus/refbus/schemas"
	"github.com/refbus/refbus/services/internal/core"
	"github.com/refbus/refbus/services/internal/core/app"
	"github.com/refbus/refbus/services/kinds"
)

// pgSettings are the server settings of the bench's Postgres: the real
// durability settings (fsync, synchronous_commit and full_page_writes keep
// their defaults, all on), with room for four services' pools.
var pgSettings = map[string]string{
	"max_connections": "200",
	"shared_buffers":  "256MB",
}

// nodes are the bench's network: one node of each kind, named after it.
var nodes = kinds.Names

// stack is the system under test: Postgres, NATS and a node of each of the
// four kinds, in one temporary directory.
type stack struct {
	dir  string
	keep bool
	log  *slog.Logger
	pg   *pglocal.Cluster
	nats *server.Server
	svcs map[string]*core.Node
	// consents are the family consents the bench referrals go under, one
	// per pair of agencies.
	consents map[pair][]uuid.UUID
	// pools are the bench's own connections to each agency's database,
	// for counting and for the latency report.
	pools map[string]*pgxpool.Pool
	// stall is how long a wait goes on without progress before it fails;
	// zero waits until its deadline.
	stall time.Duration

	// ctx is cancelled, with the service's error as cause, when a service
	// stops on its own.
	ctx       context.Context
	cancelCtx context.CancelCauseFunc
	stopSvcs  context.CancelFunc
	running   sync.WaitGroup
}

// startStack starts everything; on error it has already cleaned up.
func startStack(ctx context.Context, log *slog.Logger, keep bool, extra map[string]string, families int) (st *stack, err error) {
	dir, err := os.MkdirTemp("", "refbus-bench-")
	if err != nil {
		return nil, fmt.Errorf("make temporary directory: %w", err)
	}
	st = &stack{dir: dir, keep: keep, log: log, svcs: map[string]*core.Node{}, pools: map[string]*pgxpool.Pool{}}
	defer func() {
		if err != nil {
			if cerr := st.close(context.WithoutCancel(ctx)); cerr != nil {
				err = errors.Join(err, fmt.Errorf("clean up: %w", cerr))
			}
			st = nil
		}
	}()
	// When run as root, Postgres runs as the postgres user, which must be
	// able to enter the directory its data directory is made in.
	if err := os.Chmod(dir, 0o755); err != nil {
		return st, fmt.Errorf("open temporary directory: %w", err)
	}

	settings := maps.Clone(pgSettings)
	maps.Copy(settings, extra)
	if st.pg, err = pglocal.Start(ctx, pglocal.Options{Dir: filepath.Join(dir, "pg"), Settings: settings, Logger: log}); err != nil {
		return st, err
	}
	if st.nats, err = natslocal.Start(natslocal.Options{StoreDir: filepath.Join(dir, "nats"), Port: -1}); err != nil {
		return st, err
	}
	if err := network.Setup(ctx, st.nats.ClientURL(), bus.StreamConfig{}, bus.ConsumerConfig{}, nodes); err != nil {
		return st, err
	}
	for _, a := range nodes {
		if err := st.pg.CreateDatabase(ctx, a, ""); err != nil {
			return st, err
		}
		svc, err := core.New(ctx, core.Config{Node: a, DatabaseURL: st.pg.URL(a), NATSURL: st.nats.ClientURL(), Coordinator: "social"}, kinds.New(a), log)
		if err != nil {
			return st, err
		}
		st.svcs[a] = svc
		pcfg, err := pgxpool.ParseConfig(st.pg.URL(a))
		if err != nil {
			return st, fmt.Errorf("%s: parse database url: %w", a, err)
		}
		pcfg.MaxConns = 2
		pool, err := pgxpool.NewWithConfig(ctx, pcfg)
		if err != nil {
			return st, fmt.Errorf("%s: connect to postgres: %w", a, err)
		}
		st.pools[a] = pool
	}
	// Each family's consent is recorded before its referral, as at intake:
	// families consents per pair, so that no two referrals of a run share
	// one (sharing would make their transactions queue on its lock).
	// Each goroutine fills its own element of a slice made before any of
	// them starts: the map is only read once they are done.
	st.consents = map[pair][]uuid.UUID{}
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(32)
	for _, p := range pairs {
		ids := make([]uuid.UUID, families)
		st.consents[p] = ids
		for k := range families {
			g.Go(func() error {
				c, err := st.svcs[p.from].App().RecordConsent(gctx, app.NewConsent{GivenBy: "bench", ToOrg: p.to, Purpose: "bench",
					DataCategories: []string{schemas.CategorySummary}, ExpiresAt: time.Now().AddDate(1, 0, 0)})
				if err != nil {
					return fmt.Errorf("record consent: %w", err)
				}
				ids[k] = c.ID
				return nil
			})
		}
	}
	if err := g.Wait(); err != nil {
		return st, err
	}

	st.ctx, st.cancelCtx = context.WithCancelCause(ctx)
	svcCtx, stopSvcs := context.WithCancel(context.WithoutCancel(ctx))
	st.stopSvcs = stopSvcs
	for a, svc := range st.svcs {
		st.running.Go(func() {
			if err := svc.Run(svcCtx); err != nil {
				st.cancelCtx(fmt.Errorf("node %s stopped: %w", a, err))
			} else if svcCtx.Err() == nil {
				st.cancelCtx(fmt.Errorf("node %s stopped for no reason", a))
			}
		})
	}
	return st, nil
}

// cause returns the error that stopped a service, if one did, in place of
// err, which is then only its consequence.
func (st *stack) cause(err error) error {
	if c := context.Cause(st.ctx); c != nil && !errors.Is(c, context.Canceled) {
		return c
	}
	return err
}

// close stops the services, NATS and Postgres and removes the temporary
// directory, whatever state the stack is in.
func (st *stack) close(ctx context.Context) error {
	var errs []error
	if st.stopSvcs != nil {
		st.stopSvcs()
		done := make(chan struct{})
		go func() { st.running.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(30 * time.Second):
			errs = append(errs, errors.New("the nodes did not stop within 30s"))
		}
		st.cancelCtx(context.Canceled)
	}
	for _, svc := range st.svcs {
		svc.Close()
	}
	for _, p := range st.pools {
		p.Close()
	}
	if st.nats != nil {
		st.nats.Shutdown()
		st.nats.WaitForShutdown()
	}
	if st.pg != nil {
		ctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
		if err := st.pg.Stop(ctx); err != nil {
			errs = append(errs, err)
		}
		cancel()
	}
	if st.keep {
		fmt.Fprintf(os.Stderr, "bench: kept %s\n", st.dir)
	} else if err := os.RemoveAll(st.dir); err != nil {
		errs = append(errs, fmt.Errorf("remove %s: %w", st.dir, err))
	}
	return errors.Join(errs...)
}

// startCPUProfile profiles this process into file until the returned
// function is called; an empty file profiles nothing.
func startCPUProfile(file string) (stop func() error, err error) {
	if file == "" {
		return func() error { return nil }, nil
	}
	f, err := os.Create(file)
	if err != nil {
		return nil, fmt.Errorf("cpu profile: %w", err)
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		f.Close()
		return nil, fmt.Errorf("cpu profile: %w", err)
	}
	return func() error {
		pprof.StopCPUProfile()
		if err := f.Close(); err != nil {
			return fmt.Errorf("cpu profile: %w", err)
		}
		return nil
	}, nil
}
