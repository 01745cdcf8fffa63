package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	mrand "math/rand/v2"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/pgxpool"
	"golang.org/x/sync/errgroup"

	"github.com/refbus/refbus/pkg/natslocal"
	"github.com/refbus/refbus/pkg/pglocal"
	"github.com/refbus/refbus/schemas"
	"github.com/refbus/refbus/services/internal/admin"
	"github.com/refbus/refbus/services/internal/core"
	"github.com/refbus/refbus/services/internal/core/app"
	"github.com/refbus/refbus/services/internal/core/directory"
	"github.com/refbus/refbus/services/kinds"
)

// netRun is what benchNetwork measured.
type netRun struct {
	nodes, orgs int
	n           int
	warmup      int // referrals sent before timing
	create      time.Duration
	e2e         time.Duration
	onboard     time.Duration
	cpu         cpuCost
}

func (r netRun) perSec() float64 { return float64(r.n) / r.e2e.Seconds() }

// netNode is one node of the network run.
type netNode struct {
	name, kind string
	orgs       []directory.Organization
	env        map[string]string // its bundle's node.env
	svc        *core.Node
}

// netRef is one referral of the network run, with its consent.
type netRef struct {
	from       int // node index
	fromOrg    string
	toOrg, svc string
	consent    uuid.UUID
}

// benchNetwork runs a network of nodes nodes (each with its own database
// in one Postgres cluster, on one NATS) hosting orgs organizations, in
// the production path: NATS in operator mode, the network made and each
// node added by the administrator's library (refbus-admin), each node
// with its bundle (credentials, anchor, signing seed and sealing key),
// listings signed and checked against the registry. All nodes but the
// last take n
// referrals between random organizations of different nodes from
// concurrent creators, after as many untimed ones per node as warmup
// gives each node of the four-node run; then the last node is added and
// started, and
// onboard is the time from then to its first referral received (receipt
// back at the sender).
func benchNetwork(ctx context.Context, log *slog.Logger, nodeCount, orgCount, n, warmup, concurrent int, timeout, stall time.Duration, profile string) (r netRun, err error) {
	r.nodes, r.orgs, r.n = nodeCount, orgCount, n
	dir, err := os.MkdirTemp("", "refbus-bench-net-")
	if err != nil {
		return r, err
	}
	defer os.RemoveAll(dir)
	if err := os.Chmod(dir, 0o755); err != nil {
		return r, err
	}
	const maxConns = 6
	settings := map[string]string{"max_connections": fmt.Sprint(nodeCount*(maxConns+2) + 20), "shared_buffers": "256MB"}
	pg, err := pglocal.Start(ctx, pglocal.Options{Dir: filepath.Join(dir, "pg"), Settings: settings, Logger: log})
	if err != nil {
		return r, err
	}
	defer func() {
		sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Minute)
		defer cancel()
		if serr := pg.Stop(sctx); serr != nil {
			err = errors.Join(err, serr)
		}
	}()
	// The network as its administrator makes it (refbus-admin's library):
	// NATS in operator mode, no anonymous client, each node with its own
	// credentials, keys and registry entry from its bundle.
	adm, err := admin.Init(filepath.Join(dir, "admin"), "refbus-bench")
	if err != nil {
		return r, err
	}
	netw, err := adm.CreateNetwork("bench", admin.Settings{Country: "KZ"})
	if err != nil {
		return r, err
	}
	conf, err := adm.ServerConfig(filepath.Join(dir, "nats-jwt"))
	if err != nil {
		return r, err
	}
	confPath := filepath.Join(dir, "nats.conf")
	if err := os.WriteFile(confPath, conf, 0o600); err != nil {
		return r, err
	}
	ns, err := natslocal.Start(natslocal.Options{StoreDir: filepath.Join(dir, "nats"), Port: -1, ConfigFile: confPath})
	if err != nil {
		return r, err
	}
	defer func() { ns.Shutdown(); ns.WaitForShutdown() }()
	if err := netw.Provision(ctx, ns.ClientURL()); err != nil {
		return r, err
	}

	nodesList := make([]*netNode, nodeCount)
	for i := range nodeCount {
		k := kinds.Names[i%len(kinds.Names)]
		nodesList[i] = &netNode{name: fmt.Sprintf("n%02d_%s", i, k), kind: k}
	}
	// Organizations round-robin over the nodes; each offers its kind's
	// services that take no one in (a node may offer a bed service in
	// one organization only).
	for j := range orgCount {
		nd := nodesList[j%nodeCount]
		var offers []directory.Offer
		for _, o := range kinds.New(nd.kind).Offers() {
			if o.Beds == 0 {
				offers = append(offers, o)
			}
		}
		id := fmt.Sprintf("org-%04d", j)
		nd.orgs = append(nd.orgs, directory.Organization{ID: id, Name: "Organization " + id, Services: offers})
	}
	last := nodesList[nodeCount-1]
	// add is the administrator's "refbus-admin node add": the node's
	// consumer, registry entry and bundle.
	add := func(nd *netNode) error {
		ids := make([]string, len(nd.orgs))
		for i, o := range nd.orgs {
			ids[i] = o.ID
		}
		b, err := netw.AddNode(ctx, ns.ClientURL(), admin.NodeSpec{Name: nd.name, Kind: nd.kind, Organizations: ids})
		if err != nil {
			return err
		}
		nd.env = b.Env
		return nil
	}

	for _, nd := range nodesList {
		if err := pg.CreateDatabase(ctx, nd.name, ""); err != nil {
			return r, err
		}
	}
	pools := map[string]*pgxpool.Pool{}
	defer func() {
		for _, p := range pools {
			p.Close()
		}
	}()

	runCtx, cancelRun := context.WithCancelCause(ctx)
	defer cancelRun(nil)
	svcCtx, stopSvcs := context.WithCancel(context.WithoutCancel(ctx))
	var running sync.WaitGroup
	defer func() {
		stopSvcs()
		running.Wait()
		for _, nd := range nodesList {
			if nd.svc != nil {
				nd.svc.Close()
			}
		}
	}()
	start := func(nd *netNode) error {
		cfg := core.ConfigFrom(func(k string) string { return nd.env[k] }, nd.kind)
		cfg.HTTPAddr, cfg.DatabaseURL, cfg.NATSURL, cfg.MaxConns, cfg.Organizations = "", pg.URL(nd.name), ns.ClientURL(), maxConns, nd.orgs
		svc, err := core.New(ctx, cfg, kinds.New(nd.kind), log)
		if err != nil {
			return err
		}
		nd.svc = svc
		running.Go(func() {
			if err := svc.Run(svcCtx); err != nil {
				cancelRun(fmt.Errorf("node %s stopped: %w", nd.name, err))
			}
		})
		pcfg, err := pgxpool.ParseConfig(pg.URL(nd.name))
		if err != nil {
			return err
		}
		pcfg.MaxConns = 1
		pool, err := pgxpool.NewWithConfig(ctx, pcfg)
		if err != nil {
			return err
		}
		pools[nd.name] = pool
		return nil
	}
	active := nodesList[:nodeCount-1]
	for _, nd := range active {
		if err := add(nd); err != nil {
			return r, err
		}
	}
	for _, nd := range active {
		if err := start(nd); err != nil {
			return r, err
		}
	}
	cause := func(err error) error {
		if c := context.Cause(runCtx); c != nil && !errors.Is(c, context.Canceled) {
			return c
		}
		return err
	}

	// Wait until every node's directory lists every other active node's
	// organizations.
	want := 0
	for _, nd := range active {
		want += len(nd.orgs)
	}
	wctx, cancelW := context.WithTimeout(runCtx, timeout)
	defer cancelW()
	for _, nd := range active {
		for len(nd.svc.App().Others()) < want-len(nd.orgs) {
			select {
			case <-wctx.Done():
				return r, cause(fmt.Errorf("%s's directory lists %d of %d other organizations", nd.name, len(nd.svc.App().Others()), want-len(nd.orgs)))
			case <-time.After(20 * time.Millisecond):
			}
		}
	}

	// refs are n referrals from a random organization to a random
	// organization of another node, each with its own consent, recorded
	// before they are timed.
	rng := mrand.New(mrand.NewPCG(1, 2))
	refs := func(n int) ([]netRef, error) {
		rs := make([]netRef, n)
		for i := range rs {
			f := rng.IntN(len(active))
			t := rng.IntN(len(active) - 1)
			if t >= f {
				t++
			}
			to := active[t].orgs[rng.IntN(len(active[t].orgs))]
			rs[i] = netRef{from: f, fromOrg: active[f].orgs[rng.IntN(len(active[f].orgs))].ID, toOrg: to.ID, svc: to.Services[0].Name}
		}
		g, gctx := errgroup.WithContext(runCtx)
		g.SetLimit(32)
		for i := range rs {
			g.Go(func() error {
				c, err := active[rs[i].from].svc.App().RecordConsent(gctx, app.NewConsent{GivenBy: "bench", ToOrg: rs[i].toOrg, Purpose: "bench",
					DataCategories: []string{schemas.CategorySummary}, ExpiresAt: time.Now().AddDate(1, 0, 0)})
				if err != nil {
					return fmt.Errorf("record consent: %w", err)
				}
				rs[i].consent = c.ID
				return nil
			})
		}
		return rs, cause(g.Wait())
	}
	// send creates rs from concurrent creators, then waits until all are
	// received at their senders.
	waiter := &stack{pools: pools, stall: stall}
	send := func(rs []netRef) (create, e2e time.Duration, err error) {
		cctx, cancelC := context.WithTimeout(runCtx, timeout)
		defer cancelC()
		var next atomic.Int64
		g, gctx := errgroup.WithContext(cctx)
		t0 := time.Now()
		for range min(concurrent, len(rs)) {
			g.Go(func() error {
				for {
					i := int(next.Add(1)) - 1
					if i >= len(rs) {
						return nil
					}
					ref := rs[i]
					if _, err := active[ref.from].svc.App().CreateReferral(gctx, app.NewReferral{FromOrg: ref.fromOrg, ToOrg: ref.toOrg, Service: ref.svc, Note: benchNote, ConsentID: ref.consent}); err != nil {
						return fmt.Errorf("referral %d from %s to %s: %w", i, ref.fromOrg, ref.toOrg, err)
					}
				}
			})
		}
		if err := g.Wait(); err != nil {
			return 0, 0, cause(err)
		}
		create = time.Since(t0)
		done, err := waiter.waitReceived(runCtx, len(rs), timeout)
		if err != nil {
			return 0, 0, cause(err)
		}
		return create, done.Sub(t0), nil
	}

	// The warm-up gives each node as many referrals as the four-node
	// run's warm-up gives each of its nodes: new connections, their
	// caches and plans, and the Go runtime's heap are not timed.
	if warmup > 0 {
		ws, err := refs(warmup * len(active) / len(kinds.Names))
		if err != nil {
			return r, err
		}
		if _, _, err := send(ws); err != nil {
			return r, fmt.Errorf("warm-up: %w", err)
		}
		r.warmup = len(ws)
	}
	timed, err := refs(n)
	if err != nil {
		return r, err
	}
	stopProfile, err := startCPUProfile(profile)
	if err != nil {
		return r, err
	}
	meter := startCPU()
	if r.create, r.e2e, err = send(timed); err != nil {
		return r, err
	}
	r.cpu = meter.per(n)
	if err := stopProfile(); err != nil {
		return r, err
	}

	// Onboarding: the administrator adds the last node (its consumer and
	// its registry entry), the node starts, and a caseworker of another
	// node refers to one of its organizations as soon as the directory
	// lists it.
	sender := active[0]
	target := last.orgs[0]
	t1 := time.Now()
	if err := add(last); err != nil {
		return r, err
	}
	if err := start(last); err != nil {
		return r, cause(err)
	}
	octx, cancelO := context.WithTimeout(runCtx, timeout)
	defer cancelO()
	for {
		c, err := sender.svc.App().RecordConsent(octx, app.NewConsent{GivenBy: "bench", ToOrg: target.ID, Purpose: "bench",
			DataCategories: []string{schemas.CategorySummary}, ExpiresAt: time.Now().AddDate(1, 0, 0)})
		if err == nil {
			_, err = sender.svc.App().CreateReferral(octx, app.NewReferral{ToOrg: target.ID, Service: target.Services[0].Name, Note: benchNote, ConsentID: c.ID})
		}
		if err == nil {
			break
		}
		if !errors.Is(err, app.ErrInvalid) || octx.Err() != nil {
			return r, cause(fmt.Errorf("onboarding: refer to %s: %w", target.ID, err))
		}
		time.Sleep(5 * time.Millisecond)
	}
	if _, err := waiter.waitReceived(octx, 1, timeout); err != nil {
		return r, cause(fmt.Errorf("onboarding: %w", err))
	}
	r.onboard = time.Since(t1)
	return r, nil
}
