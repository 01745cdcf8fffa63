// Package agency is one agency's service: its HTTP API, its store, and the
// outbox relay and inbox consumer that connect it to the other agencies.
package agency

import (
	"context"
	"crypto/ecdh"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/danielgtaylor/huma/v2"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	pgxuuid "github.com/vgarvardt/pgx-google-uuid/v5"
	"golang.org/x/sync/errgroup"

	"github.com/refbus/refbus/pkg/bus"
	"github.com/refbus/refbus/pkg/event"
	"github.com/refbus/refbus/pkg/inbox"
	"github.com/refbus/refbus/pkg/outbox"
	"github.com/refbus/refbus/pkg/person"
	"github.com/refbus/refbus/schemas"
	"github.com/refbus/refbus/services/internal/db"
	"github.com/refbus/refbus/sql/agency/migrations"
)

// Service is a running agency.
type Service struct {
	cfg      Config
	self     string
	log      *slog.Logger
	pool     *pgxpool.Pool
	nc       *nats.Conn
	registry *event.Registry
	out      *outbox.Outbox
	relay    *outbox.Relay
	consumer *inbox.Consumer
	api      http.Handler
	humaAPI  huma.API
	keyer    *person.Keyer    // nil without a network key
	key      *ecdh.PrivateKey // opens confidential fields sealed to this agency
	cases    jetstream.KeyValue
	dir      jetstream.KeyValue
	stream   jetstream.Stream
	// pubMu guards published, the listing last put into the directory.
	pubMu     sync.Mutex
	published []byte
	// dirMu guards listings, the directory as the watch last saw it.
	dirMu    sync.Mutex
	listings map[string]Listing
	// consents caches consents for the check before a referral.
	consents consentCache
	// creations feeds commitGroups.
	creations chan *creation
}

// New migrates the agency's store, connects to NATS, makes sure the stream
// and the agency's consumer exist, and returns a service ready to Run.
func New(ctx context.Context, cfg Config, log *slog.Logger) (*Service, error) {
	if err := cfg.check(); err != nil {
		return nil, err
	}
	log = log.With("agency", cfg.Agency)
	if err := migrations.Up(ctx, cfg.DatabaseURL); err != nil {
		return nil, fmt.Errorf("%s: %w", cfg.Agency, err)
	}
	pcfg, err := pgxpool.ParseConfig(cfg.DatabaseURL)
	if err != nil {
		return nil, fmt.Errorf("%s: parse DATABASE_URL: %w", cfg.Agency, err)
	}
	pcfg.MaxConns = cfg.MaxConns
	plannerCosts(pcfg.ConnConfig.RuntimeParams)
	// Binary uuids: without this, pgx sends google/uuid values as text
	// through their driver.Valuer, parsing each back on the way.
	pcfg.AfterConnect = func(_ context.Context, c *pgx.Conn) error {
		pgxuuid.Register(c.TypeMap())
		return nil
	}
	pool, err := pgxpool.NewWithConfig(ctx, pcfg)
	if err != nil {
		return nil, fmt.Errorf("%s: connect to postgres: %w", cfg.Agency, err)
	}
	s := &Service{cfg: cfg, self: cfg.Agency, log: log, pool: pool, creations: make(chan *creation), listings: map[string]Listing{}}
	if err := s.connect(ctx); err != nil {
		pool.Close()
		return nil, err
	}
	return s, nil
}

func (s *Service) connect(ctx context.Context) error {
	var err error
	if s.registry, err = schemas.Registry(); err != nil {
		return fmt.Errorf("load schemas: %w", err)
	}
	opts := []nats.Option{nats.Name("refbus-" + s.self), nats.MaxReconnects(-1)}
	if s.cfg.NATSCreds != "" {
		opts = append(opts, nats.UserCredentials(s.cfg.NATSCreds))
	}
	if s.nc, err = nats.Connect(s.cfg.NATSURL, opts...); err != nil {
		return fmt.Errorf("%s: connect to nats at %s: %w", s.self, s.cfg.NATSURL, err)
	}
	// A publish whose acknowledgement never comes (the node that leads the
	// stream was lost with it) fails after 5s, so the relay publishes it
	// again instead of waiting forever.
	js, err := jetstream.New(s.nc, jetstream.WithPublishAsyncMaxPending(4096), jetstream.WithPublishAsyncTimeout(5*time.Second))
	if err != nil {
		s.nc.Close()
		return fmt.Errorf("%s: jetstream: %w", s.self, err)
	}
	if s.stream, err = bus.EnsureStream(ctx, js, s.cfg.Stream); err != nil {
		s.nc.Close()
		return fmt.Errorf("%s: %w", s.self, err)
	}
	cons, err := bus.EnsureConsumer(ctx, js, s.self, s.cfg.Consumer)
	if err != nil {
		s.nc.Close()
		return fmt.Errorf("%s: %w", s.self, err)
	}
	if s.cases, err = bus.EnsureCaseIndex(ctx, js, s.cfg.Stream.Replicas); err != nil {
		s.nc.Close()
		return fmt.Errorf("%s: %w", s.self, err)
	}
	if err := s.loadKey(ctx); err != nil {
		s.nc.Close()
		return fmt.Errorf("%s: %w", s.self, err)
	}
	if err := s.ensureDirectory(ctx, js); err != nil {
		s.nc.Close()
		return fmt.Errorf("%s: %w", s.self, err)
	}
	if s.cfg.NetworkKey != nil {
		if s.keyer, err = person.NewKeyer(s.cfg.NetworkKey); err != nil {
			s.nc.Close()
			return fmt.Errorf("%s: network key: %w", s.self, err)
		}
	}
	relayOpts := s.cfg.Relay
	relayOpts.Logger = s.log
	inboxOpts := s.cfg.Inbox
	inboxOpts.Logger = s.log
	inboxOpts.BackOff = s.cfg.Consumer.BackOff
	s.out = outbox.New(s.pool, s.self, s.registry, s.log)
	s.relay = outbox.NewRelay(s.pool, js, relayOpts)
	s.out.SetLocalRelay(s.relay)
	s.consumer = inbox.NewConsumer(s.self, s.pool, cons, js, s.registry, s.out, s, inboxOpts)
	s.api = s.newAPI()
	if s.cfg.Web != nil {
		if s.api, err = s.cfg.Web(ctx, s, s.humaAPI, s.api); err != nil {
			s.nc.Close()
			return fmt.Errorf("%s: web: %w", s.self, err)
		}
	}
	return nil
}

// Agency is the agency this service stands for.
func (s *Service) Agency() string { return s.self }

// Handler is the service's HTTP API.
func (s *Service) Handler() http.Handler { return s.api }

// Run relays, consumes and serves HTTP until ctx ends or a part fails.
func (s *Service) Run(ctx context.Context) error {
	g, ctx := errgroup.WithContext(ctx)
	g.Go(func() error { return s.relay.Run(ctx) })
	g.Go(func() error { return s.consumer.Run(ctx) })
	g.Go(func() error { return s.consumer.WatchDeadLetters(ctx, s.nc, s.stream) })
	g.Go(func() error { return s.runTimers(ctx) })
	g.Go(func() error { return s.runDirectory(ctx) })
	for range committers {
		g.Go(func() error { return s.commitGroups(ctx) })
	}
	if s.cfg.HTTPAddr != "" {
		ln, err := net.Listen("tcp", s.cfg.HTTPAddr)
		if err != nil {
			return fmt.Errorf("%s: listen on %s: %w", s.self, s.cfg.HTTPAddr, err)
		}
		srv := &http.Server{Handler: s.api, ReadHeaderTimeout: shutdownGrace}
		g.Go(func() error {
			if err := srv.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
				return fmt.Errorf("%s: serve http: %w", s.self, err)
			}
			return nil
		})
		g.Go(func() error {
			<-ctx.Done()
			sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), shutdownGrace)
			defer cancel()
			return srv.Shutdown(sctx)
		})
	}
	return g.Wait()
}

// DeadLetters lists the events JetStream stopped redelivering here.
func (s *Service) DeadLetters(ctx context.Context) ([]inbox.DeadLetter, error) {
	return s.consumer.DeadLetters(ctx)
}

// Redrive applies the dead letters again, and says how many settled.
func (s *Service) Redrive(ctx context.Context) (int, error) {
	return s.consumer.Redrive(ctx, s.stream)
}

// Close releases the connections. Call it after Run returns.
func (s *Service) Close() {
	s.out.Close()
	s.nc.Close()
	s.pool.Close()
}

// inTx runs fn in a transaction and wakes the relay after it commits, so
// the events fn enqueued go out at once.
func (s *Service) inTx(ctx context.Context, fn func(q *db.Queries, tx pgx.Tx) error) error {
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error { return fn(db.New(tx), tx) })
	if err != nil {
		return err
	}
	s.out.Wake()
	return nil
}

// plannerCosts tells the planner of the service's sessions what an index
// probe costs here: the bus's tables are hot and in memory (or on SSD), so a
// random page read costs about a sequential one (random_page_cost 1.1, the
// usual setting for SSDs; Postgres's default of 4 is for spinning disks).
//
// It matters because every statement of the bus is prepared once per
// connection and its generic plan kept. A new store's tables are empty and
// never analyzed, so the planner takes each for 10 pages; at the default
// cost it then joins a batch's keys by reading the whole table, and keeps
// doing so while the table grows to thousands of rows, until autovacuum
// first analyzes it. At 1.1 the same plans probe the indexes. The bench
// measured 30% less Postgres CPU per referral at 300 referrals/s.
//
// A random_page_cost given in DATABASE_URL (options) wins.
func plannerCosts(params map[string]string) {
	if _, set := params["random_page_cost"]; !set {
		params["random_page_cost"] = "1.1"
	}
}
