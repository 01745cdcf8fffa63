// Package app is what a node does, whatever its kind: the commands and
// queries of referrals, moves, consents, cases and deadlines that the HTTP
// API and the caseworker UI call, and the handler that applies what other
// nodes send over the bus. Its data is the core's store (package coredb);
// what is particular to a kind comes through package kind.
package app

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"golang.org/x/sync/errgroup"

	"github.com/refbus/refbus/pkg/bus"
	"github.com/refbus/refbus/pkg/event"
	"github.com/refbus/refbus/pkg/outbox"
	"github.com/refbus/refbus/pkg/person"
	"github.com/refbus/refbus/services/internal/core/coredb"
	"github.com/refbus/refbus/services/internal/core/directory"
	"github.com/refbus/refbus/services/internal/core/kind"
)

// Errors the API and the UI turn into problems: the message after the
// sentinel is meant for the person who made the request.
var (
	// ErrNotFound: nothing with that id in this node's store.
	ErrNotFound = errors.New("not found")
	// ErrInvalid: the request is wrong; the message says how.
	ErrInvalid = kind.ErrInvalid
	// ErrConflict: the move is not allowed in the referral's state now.
	ErrConflict = kind.ErrConflict
	// ErrForbidden: this node is not the party that may make the move.
	ErrForbidden = errors.New("forbidden")
	// ErrStopped: the node is stopping (or stopped) and takes no more.
	ErrStopped = errors.New("the node is stopping")
	// ErrNotHosted: the network's registry does not have a node host an
	// organization (Deps.Hosts).
	ErrNotHosted = errors.New("not hosted by the node")
)

// Config is how a node's application behaves.
type Config struct {
	// Node is this node's name on the bus.
	Node string
	// Organizations are the organizations this node hosts, with their
	// services; the first is the node's default. At least one.
	Organizations []directory.Organization
	// SLAs are deadlines by service, over those the directory lists; the
	// "" entry applies to services with none (default DefaultSLA).
	SLAs map[string]SLA
	// Coordinator is the node that sees every overdue referral; none if
	// empty.
	Coordinator string
	// SigningKey is this node's public signing key, for its listing.
	SigningKey string
	// Country is the network's: a person_id must be its national id
	// (empty: either).
	Country person.Country
	// SealingKey is this node's X25519 private key, as the network's
	// administrator issued it with the registry's public half; nil keeps
	// a key the node makes in its own store at first start.
	SealingKey []byte
	// Now is the clock of consents and deadlines (default time.Now).
	Now func() time.Time
	// SLATick is how often due deadlines are looked for (default 1s).
	SLATick time.Duration
	// DirectoryTick is how often the listing is refreshed with the free
	// places (default 1s); it is published only when it changed.
	DirectoryTick time.Duration
	// KeyOfTheDay is how long a sealing key of the day is used before the
	// next replaces it (default 24h); KeyGrace how long a replaced one is
	// kept, for senders that still had the listing before, before it is
	// destroyed (default 1h), once everything sent to it was taken in.
	KeyOfTheDay, KeyGrace time.Duration
	Logger                *slog.Logger
}

// Deps are what the application works with, made by the node.
type Deps struct {
	Pool      *pgxpool.Pool
	Kind      kind.Kind
	Outbox    *outbox.Outbox
	Registry  *event.Registry
	Directory *directory.Directory
	// Keyer turns national ids into person keys; nil refuses them.
	Keyer *person.Keyer
	// Hosts, if set, says whether the network's registry has node host
	// the organization org: an error wrapping ErrNotHosted if not (a
	// referral that names another node's organization as its sender is
	// refused), another if it could not tell (it is tried again later).
	// Nil (no registry) takes a sender's word.
	Hosts func(ctx context.Context, node, org string) error
	// TokenRevoked, if set, says whether the network's administrator
	// revoked the bearer token with id (jti) of this node's systems.
	TokenRevoked func(id string) bool
	// Idle says whether everything sent to this node was taken in (nil
	// if so, or why not): before it, no retired sealing key is destroyed.
	Idle func(ctx context.Context) error
}

// App is one node's application.
type App struct {
	cfg      Config
	self     string
	log      *slog.Logger
	pool     *pgxpool.Pool
	kind     kind.Kind
	out      *outbox.Outbox
	registry *event.Registry
	dir      *directory.Directory
	keyer    *person.Keyer
	hosts    func(ctx context.Context, node, org string) error
	revoked  func(id string) bool
	idle     func(ctx context.Context) error
	seal     *sealer
	// consents caches consents for the check before a referral.
	consents consentCache
	// creations feeds commitGroups; stopped closes when Run returns, after
	// which nothing takes from it.
	creations chan *creation
	stopped   chan struct{}
	// compactDue asks the compactor to rewrite the store's tables
	// (compact.go).
	compactDue chan struct{}
}

// New opens the application of a node: it loads (or makes) the node's
// sealing key and tells the kind what the node offers.
func New(ctx context.Context, cfg Config, d Deps) (*App, error) {
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.SLATick == 0 {
		cfg.SLATick = time.Second
	}
	if cfg.DirectoryTick == 0 {
		cfg.DirectoryTick = time.Second
	}
	if cfg.KeyOfTheDay == 0 {
		cfg.KeyOfTheDay = 24 * time.Hour
	}
	if cfg.KeyGrace == 0 {
		cfg.KeyGrace = time.Hour
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	a := &App{
		cfg: cfg, self: cfg.Node, log: cfg.Logger, pool: d.Pool, kind: d.Kind, out: d.Outbox, registry: d.Registry,
		dir: d.Directory, keyer: d.Keyer, hosts: d.Hosts, revoked: d.TokenRevoked, idle: d.Idle, creations: make(chan *creation), stopped: make(chan struct{}), compactDue: make(chan struct{}, 1),
	}
	var err error
	if a.seal, err = loadSealer(ctx, coredb.New(d.Pool), cfg.Node, cfg.SealingKey); err != nil {
		return nil, err
	}
	if len(cfg.Organizations) == 0 {
		return nil, fmt.Errorf("node %s hosts no organization", cfg.Node)
	}
	if err := a.kind.Open(ctx, d.Pool, kind.Node{Name: cfg.Node, Organizations: cfg.Organizations, Now: cfg.Now}); err != nil {
		return nil, fmt.Errorf("open %s: %w", a.kind.Name(), err)
	}
	return a, nil
}

// Node is the node this application runs.
func (a *App) Node() string { return a.self }

// TokenRevoked reports whether the bearer token with id (jti) was revoked
// by the network's administrator (false without a registry).
func (a *App) TokenRevoked(id string) bool { return a.revoked != nil && a.revoked(id) }

// Run writes queued referrals, fires deadlines and keeps the node's
// listing current until ctx ends.
func (a *App) Run(ctx context.Context) error {
	defer close(a.stopped)
	g, ctx := errgroup.WithContext(ctx)
	g.Go(func() error { return a.commitGroups(ctx) })
	g.Go(func() error { return a.compactor(ctx) })
	// Deadlines that passed fire within a tick; places taken or freed by
	// events from the bus show in the listing within one.
	g.Go(func() error {
		return a.every(ctx, a.cfg.SLATick, "deadlines", func(ctx context.Context) error {
			_, err := a.FireDueTimers(ctx)
			return err
		})
	})
	g.Go(func() error { return a.every(ctx, a.cfg.DirectoryTick, "directory", a.publishListing) })
	g.Go(func() error {
		return a.every(ctx, countFoldEvery, "list counts", func(ctx context.Context) error {
			_, err := a.FoldCounts(ctx)
			return err
		})
	})
	// The listing makes a new sealing key of the day when it is due;
	// retired ones are destroyed once used up.
	g.Go(func() error {
		return a.every(ctx, max(a.cfg.KeyGrace/4, time.Second), "sealing keys", func(ctx context.Context) error {
			n, err := a.DestroyRetiredKeys(ctx, a.cfg.KeyGrace)
			if n > 0 {
				a.log.Info("sealing keys of the day destroyed", "keys", n)
			}
			return err
		})
	})
	// Disclosed addresses are forgotten within a minute of their time.
	g.Go(func() error {
		return a.every(ctx, time.Minute, "disclosed addresses", func(ctx context.Context) error {
			_, err := a.DropExpiredDisclosures(ctx)
			return err
		})
	})
	return g.Wait()
}

// every runs f every d until ctx ends; a failure is logged as what's, and
// tried again at the next tick.
func (a *App) every(ctx context.Context, d time.Duration, what string, f func(context.Context) error) error {
	tick := time.NewTicker(d)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-tick.C:
			if err := f(ctx); err != nil && ctx.Err() == nil {
				a.log.Warn(what, "err", err)
			}
		}
	}
}

// inTx runs fn in a transaction and wakes the relay after it commits, so
// the events fn enqueued go out at once.
func (a *App) inTx(ctx context.Context, fn func(q *coredb.Queries, tx pgx.Tx) error) error {
	err := pgx.BeginFunc(ctx, a.pool, func(tx pgx.Tx) error { return fn(coredb.New(tx), tx) })
	if err != nil {
		return err
	}
	a.out.Wake()
	return nil
}

// enqueue enqueues msgs in db. An event that breaks its schema was built
// from the request (Registry.Build leaves validating to the outbox), so it
// is the caller's ErrInvalid.
func (a *App) enqueue(ctx context.Context, db outbox.DB, msgs ...outbox.Message) error {
	err := a.out.Enqueue(ctx, db, msgs...)
	if errors.Is(err, event.ErrInvalid) {
		return fmt.Errorf("%w: %v", ErrInvalid, err)
	}
	return err
}

// notice is an event of type typ about referral id of case caseID, for
// node to: a notice, which carries no sequence (it applies whatever the
// referral's state), in the referral's trace.
func (a *App) notice(to, typ string, id, caseID uuid.UUID, traceparent string, data any) (outbox.Message, error) {
	e, err := a.registry.New(bus.Source(a.self), typ, id.String(), data)
	if err != nil {
		return outbox.Message{}, err
	}
	e.SetExtension(event.ExtCaseID, caseID.String())
	if traceparent != "" {
		e.SetExtension(event.ExtTraceparent, traceparent)
	}
	return outbox.Message{To: to, Event: e}, nil
}

// known reports whether err is one of the errors meant for the caller.
func known(err error) bool {
	return errors.Is(err, ErrNotFound) || errors.Is(err, ErrConflict) || errors.Is(err, ErrForbidden) || errors.Is(err, ErrInvalid)
}

func mapSlice[T, U any](in []T, f func(T) U) []U {
	out := make([]U, len(in))
	for i, v := range in {
		out[i] = f(v)
	}
	return out
}
