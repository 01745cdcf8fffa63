// Package core runs a node of any kind: it migrates the node's store
// (the bus's tables, the core's and its kind's), connects to NATS, and
// wires the outbox relay, the inbox consumer, the application, the
// directory, the HTTP API and the caseworker UI together.
//
// Where a referral goes:
//
//	created  app.CreateReferral  -> core.referral + bus.outbox, one transaction
//	sent     outbox.Relay        -> JetStream, subject refbus.<from>.<to>.referral.requested
//	received inbox.Consumer      -> app's handler: core.referral + bus.inbox, one transaction
//	answered receipt (pkg)       -> the sender's app marks it received
//	moved    app.Move            -> the same way back, one event per move
package core

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	pgxuuid "github.com/vgarvardt/pgx-google-uuid/v5"
	"golang.org/x/sync/errgroup"

	"github.com/refbus/refbus/pkg/busstore"
	"github.com/refbus/refbus/pkg/inbox"
	"github.com/refbus/refbus/pkg/outbox"
	"github.com/refbus/refbus/pkg/person"
	"github.com/refbus/refbus/pkg/pgmigrate"
	"github.com/refbus/refbus/schemas"
	"github.com/refbus/refbus/services/internal/core/api"
	"github.com/refbus/refbus/services/internal/core/app"
	"github.com/refbus/refbus/services/internal/core/coredb"
	"github.com/refbus/refbus/services/internal/core/directory"
	"github.com/refbus/refbus/services/internal/core/kind"
	"github.com/refbus/refbus/services/internal/network"
)

// Node is a running node.
type Node struct {
	cfg      Config
	kind     kind.Kind
	log      *slog.Logger
	pool     *pgxpool.Pool
	nc       *nats.Conn
	out      *outbox.Outbox
	relay    *outbox.Relay
	consumer *inbox.Consumer
	stream   jetstream.Stream
	dir      *directory.Directory
	reg      *network.Registry
	app      *app.App
	handler  http.Handler
}

// Migrate brings the store at url to the node's schema: the bus's line,
// the core's and the kind's, each in its own Postgres schema, and adopts
// a store made by the single migration line of earlier versions.
func Migrate(ctx context.Context, url string, k kind.Kind, log *slog.Logger) error {
	if err := pgmigrate.Up(ctx, url, Lines(k)...); err != nil {
		return err
	}
	return dropLegacy(ctx, url, log)
}

// Lines are the migration lines of a node of kind k, in the order they
// apply: the bus's, the core's, the kind's.
func Lines(k kind.Kind) []pgmigrate.Line {
	return []pgmigrate.Line{busstore.Migrations, coredb.Migrations, k.Migrations()}
}

// New migrates the node's store, connects to NATS, checks the stream and
// makes sure the node's consumer exists, and returns a node ready to Run.
func New(ctx context.Context, cfg Config, k kind.Kind, log *slog.Logger) (*Node, error) {
	if cfg.Node == "" {
		cfg.Node = k.Name()
	}
	if err := cfg.check(k.Offers()); err != nil {
		return nil, err
	}
	log = log.With("node", cfg.Node)
	if err := Migrate(ctx, cfg.DatabaseURL, k, log); err != nil {
		return nil, fmt.Errorf("%s: %w", cfg.Node, err)
	}
	pcfg, err := pgxpool.ParseConfig(cfg.DatabaseURL)
	if err != nil {
		return nil, fmt.Errorf("%s: parse DATABASE_URL: %w", cfg.Node, err)
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
		return nil, fmt.Errorf("%s: connect to postgres: %w", cfg.Node, err)
	}
	n := &Node{cfg: cfg, kind: k, log: log, pool: pool}
	if err := n.connect(ctx); err != nil {
		if n.nc != nil {
			n.nc.Close()
		}
		pool.Close()
		return nil, fmt.Errorf("%s: %w", cfg.Node, err)
	}
	return n, nil
}

func (n *Node) connect(ctx context.Context) error {
	registry, err := schemas.Registry()
	if err != nil {
		return fmt.Errorf("load schemas: %w", err)
	}
	// Replies come on the node's own inbox prefix: its NATS identity may
	// receive nothing else.
	opts := []nats.Option{nats.Name("refbus-" + n.cfg.Node), nats.MaxReconnects(-1), nats.CustomInboxPrefix(network.InboxPrefix(n.cfg.Node)),
		// A suspended node is refused until it is resumed: keep trying,
		// so that it comes back without a restart.
		nats.IgnoreAuthErrorAbort(),
		nats.ErrorHandler(func(_ *nats.Conn, _ *nats.Subscription, err error) { n.log.Warn("nats", "err", err) })}
	if n.cfg.NATSCreds != "" {
		opts = append(opts, nats.UserCredentials(n.cfg.NATSCreds))
	}
	if n.nc, err = nats.Connect(n.cfg.NATSURL, opts...); err != nil {
		return fmt.Errorf("connect to nats at %s: %w", network.HideCredentials(n.cfg.NATSURL), err)
	}
	// A publish whose acknowledgement never comes (the server that leads
	// the stream was lost with it) fails after 5s, so the relay publishes
	// it again instead of waiting forever.
	js, err := jetstream.New(n.nc, jetstream.WithPublishAsyncMaxPending(4096), jetstream.WithPublishAsyncTimeout(5*time.Second))
	if err != nil {
		return fmt.Errorf("jetstream: %w", err)
	}
	h, err := network.Open(ctx, js, n.cfg.Node)
	if err != nil {
		return err
	}
	n.stream = h.Stream
	dirOpts := directory.Options{Logger: n.log}
	if n.cfg.Anchor != "" {
		if n.reg, err = n.openRegistry(ctx, h.Registry); err != nil {
			return err
		}
		n.cfg.Inbox.Trust = n.reg
		dirOpts.Encode, dirOpts.Decode = n.listingCodec()
		dirOpts.Check = n.active
	}
	n.dir = directory.New(h.Directory, n.cfg.Node, dirOpts)
	var hosts func(ctx context.Context, node, org string) error
	var revoked func(id string) bool
	if n.reg != nil {
		hosts, revoked = n.hosts, n.tokenRevoked
	}
	var keyer *person.Keyer
	if n.cfg.NetworkKey != nil {
		if keyer, err = person.NewKeyer(n.cfg.NetworkKey); err != nil {
			return fmt.Errorf("network key: %w", err)
		}
	}
	relayOpts := n.cfg.Relay
	relayOpts.Logger = n.log
	inboxOpts := n.cfg.Inbox
	cons := h.Consumer
	inboxOpts.Logger = n.log
	inboxOpts.BackOff = n.cfg.Consumer.BackOff
	n.out = outbox.New(n.pool, n.cfg.Node, registry, n.log)
	n.relay = outbox.NewRelay(n.pool, js, relayOpts)
	n.out.SetLocalRelay(n.relay)
	n.app, err = app.New(ctx, app.Config{
		Node: n.cfg.Node, Organizations: n.cfg.Organizations, SLAs: n.cfg.SLAs, Coordinator: n.cfg.Coordinator, SigningKey: n.cfg.signingKey(), SealingKey: n.cfg.SealingKey, Country: n.cfg.Country,
		Now: n.cfg.Now, SLATick: n.cfg.SLATick, DirectoryTick: n.cfg.DirectoryTick, Logger: n.log,
	}, app.Deps{Pool: n.pool, Kind: n.kind, Outbox: n.out, Registry: registry, Directory: n.dir, Keyer: keyer, Hosts: hosts, TokenRevoked: revoked,
		Idle: func(ctx context.Context) error {
			info, err := cons.Info(ctx)
			if err == nil && (info.NumPending != 0 || info.NumAckPending != 0) {
				return fmt.Errorf("%d events wait for %s", info.NumPending+uint64(info.NumAckPending), n.cfg.Node)
			}
			if err != nil {
				return err
			}
			// A dead letter may be a request that a re-drive would open.
			dl, err := n.DeadLetters(ctx)
			if err == nil && len(dl) > 0 {
				err = fmt.Errorf("%d dead letters wait for a re-drive at %s", len(dl), n.cfg.Node)
			}
			return err
		}})
	if err != nil {
		return err
	}
	if err := n.app.PublishListing(ctx); err != nil {
		return err
	}
	n.consumer = inbox.NewConsumer(n.cfg.Node, n.pool, cons, js, registry, n.out, n.app.Handler(), inboxOpts)
	handler, humaAPI := api.New(n.app, n, n.log)
	n.handler = handler
	if n.cfg.Web != nil {
		if n.handler, err = n.cfg.Web(ctx, n.app, n, humaAPI, handler); err != nil {
			return fmt.Errorf("web: %w", err)
		}
	}
	return nil
}

// Name is the node's name on the bus.
func (n *Node) Name() string { return n.cfg.Node }

// App is the node's application: its commands and queries.
func (n *Node) App() *app.App { return n.app }

// Handler is the node's HTTP API (and UI, when configured).
func (n *Node) Handler() http.Handler { return n.handler }

// Run relays, consumes and serves HTTP until ctx ends or a part fails.
func (n *Node) Run(ctx context.Context) error {
	g, ctx := errgroup.WithContext(ctx)
	g.Go(func() error { return n.relay.Run(ctx) })
	g.Go(func() error { return n.consumer.Run(ctx) })
	g.Go(func() error { return n.consumer.WatchDeadLetters(ctx, n.nc, n.stream) })
	g.Go(func() error { return n.dir.Watch(ctx) })
	if n.reg != nil {
		g.Go(func() error { return n.reg.Watch(ctx) })
	}
	g.Go(func() error { return n.app.Run(ctx) })
	if n.cfg.HTTPAddr != "" {
		ln, err := net.Listen("tcp", n.cfg.HTTPAddr)
		if err != nil {
			return fmt.Errorf("%s: listen on %s: %w", n.cfg.Node, n.cfg.HTTPAddr, err)
		}
		srv := &http.Server{Handler: n.handler, ReadHeaderTimeout: shutdownGrace}
		g.Go(func() error {
			if err := srv.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
				return fmt.Errorf("%s: serve http: %w", n.cfg.Node, err)
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

// shutdownGrace bounds how long the HTTP server waits for requests in
// flight when the node stops.
const shutdownGrace = 5 * time.Second

// DeadLetters lists the events JetStream stopped redelivering here.
func (n *Node) DeadLetters(ctx context.Context) ([]inbox.DeadLetter, error) {
	return n.consumer.DeadLetters(ctx)
}

// Redrive applies the dead letters again, and says how many settled.
func (n *Node) Redrive(ctx context.Context) (int, error) {
	return n.consumer.Redrive(ctx, n.stream)
}

// Connected reports whether the node is connected to NATS now.
func (n *Node) Connected() bool { return n.nc.IsConnected() }

// Ping says whether the node's store answers.
func (n *Node) Ping(ctx context.Context) error { return n.pool.Ping(ctx) }

// Close releases the connections. Call it after Run returns.
func (n *Node) Close() {
	n.out.Close()
	n.nc.Close()
	n.pool.Close()
}

// plannerCosts has the node's sessions plan as on SSDs or memory
// (random_page_cost 1.1, not Postgres's 4, which is for spinning disks).
// The bus's statements are prepared once per connection and keep their
// generic plans; planned while the tables are young and never analyzed,
// at 4 they join a batch's keys by reading whole tables until autovacuum
// first analyzes them, at 1.1 they probe the indexes. A random_page_cost
// given in DATABASE_URL (options) wins.
func plannerCosts(params map[string]string) {
	if _, set := params["random_page_cost"]; !set {
		params["random_page_cost"] = "1.1"
	}
}
