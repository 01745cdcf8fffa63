package core_test

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/refbus/refbus/pkg/bustest"
	"github.com/refbus/refbus/schemas"
	"github.com/refbus/refbus/services/internal/core"
	"github.com/refbus/refbus/services/internal/core/app"
	"github.com/refbus/refbus/services/internal/core/nodetest"
)

// crashApp is the core as the bus's crash suite drives it: a unit of work
// is a referral, its effect the receiver's kind told it received it (the
// ledger's row, which no unique key protects).
type crashApp struct{ t *testing.T }

func (a crashApp) Migrate(ctx context.Context, url string) error {
	return core.Migrate(ctx, url, ledgerKind(), nodetest.Logger(a.t))
}

func (a crashApp) Start(ctx context.Context, c bustest.NodeConfig) (bustest.Node, error) {
	cfg := core.Config{Node: c.Name, DatabaseURL: c.DatabaseURL, NATSURL: c.NATSURL, Stream: c.Stream, Consumer: c.Consumer, NetworkKey: nodetest.NetworkKey}
	cfg.Relay.Fault, cfg.Relay.ReceiptTimeout = c.RelayFault, c.ReceiptTimeout
	cfg.Inbox.Fault = c.InboxFault
	if err := provision(ctx, cfg); err != nil {
		return nil, err
	}
	ctx, cancel := context.WithCancel(ctx)
	n, err := core.New(ctx, cfg, ledgerKind(), nodetest.Logger(a.t).With("node", c.Name))
	if err != nil {
		cancel()
		return nil, err
	}
	done := make(chan error, 1)
	go func() { done <- n.Run(ctx) }()
	return &crashNode{n: n, cancel: cancel, done: done}, nil
}

// provision makes what the node of cfg needs on NATS, as the admin would.
func provision(ctx context.Context, cfg core.Config) error {
	nc, err := nats.Connect(cfg.NATSURL)
	if err != nil {
		return err
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		return err
	}
	return nodetest.Provision(ctx, js, cfg.Node, cfg)
}

func (crashApp) Effects(ctx context.Context, url string) (map[string]int, error) {
	return countBy(ctx, url, `SELECT referral_id::text, count(*) FROM ledger.received GROUP BY 1`)
}

func (crashApp) Delivered(ctx context.Context, url string) (map[string]bool, error) {
	n, err := countBy(ctx, url, `SELECT id::text, 1 FROM core.referral WHERE status <> 'requested' AND delivery_error = ''`)
	out := make(map[string]bool, len(n))
	for id := range n {
		out[id] = true
	}
	return out, err
}

func countBy(ctx context.Context, url, query string) (map[string]int, error) {
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		return nil, err
	}
	defer conn.Close(context.WithoutCancel(ctx))
	rows, err := conn.Query(ctx, query)
	if err != nil {
		return nil, err
	}
	out := map[string]int{}
	for rows.Next() {
		var id string
		var n int
		if err := rows.Scan(&id, &n); err != nil {
			return nil, err
		}
		out[id] = n
	}
	return out, rows.Err()
}

type crashNode struct {
	n      *core.Node
	cancel context.CancelFunc
	done   chan error
}

// Send makes a referral to node to under a consent of the family's.
func (c *crashNode) Send(ctx context.Context, to string) (string, error) {
	a := c.n.App()
	consent, err := a.RecordConsent(ctx, app.NewConsent{GivenBy: "the mother", ToOrg: to, Purpose: "help",
		DataCategories: []string{schemas.CategorySummary}, ExpiresAt: time.Now().Add(time.Hour)})
	if err != nil {
		return "", fmt.Errorf("consent: %w", err)
	}
	r, err := a.CreateReferral(ctx, app.NewReferral{ToOrg: to, Service: "help", Note: "crash suite", ConsentID: consent.ID})
	if err != nil {
		return "", err
	}
	return r.ID.String(), nil
}

func (c *crashNode) Stop() error {
	c.cancel()
	err := <-c.done
	c.n.Close()
	if errors.Is(err, context.Canceled) {
		return nil
	}
	return err
}

// The core passes the bus's crash suite: the relay killed before publish
// and before marking, the consumer killed after commit, a duplicate
// publish past JetStream's dedupe, the broker and the receiver's Postgres
// killed with SIGKILL. Every referral's effect happens exactly once at
// its receiver, and its sender sees it received.
func TestCrashSuite(t *testing.T) {
	t.Parallel()
	bustest.Run(t, crashApp{t})
}
