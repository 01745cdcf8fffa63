// Package bustest is the bus's test kit, imported only by tests: the crash
// suite any application on the bus runs against its own effects (Run), and
// checks of the bus's tables and consumers (Counts, CursorPassed,
// ConsumerIdle).
//
// The suite, in the spirit of Watermill's pub/sub conformance tests, kills
// the parts of two nodes of the application at each point where delivery
// could lose or repeat work, for real where a process dies (the broker, the
// receiver's Postgres) and with the parts' fault hooks where a goroutine
// stands for the process, and checks that in the end every unit of work
// had its effect exactly once and its sender saw it delivered.
package bustest

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/refbus/refbus/pkg/bus"
	"github.com/refbus/refbus/pkg/inbox"
	"github.com/refbus/refbus/pkg/natstest"
	"github.com/refbus/refbus/pkg/outbox"
	"github.com/refbus/refbus/pkg/pgtest"
	"github.com/refbus/refbus/pkg/poll"
)

// App is an application on the bus, as the suite drives it.
type App interface {
	// Migrate makes the empty database at url the store of one node: the
	// bus's migration line and the application's.
	Migrate(ctx context.Context, url string) error
	// Start runs a node of the application (its relay, its consumer, and
	// whatever else it runs) as c says, until the node is stopped.
	Start(ctx context.Context, c NodeConfig) (Node, error)
	// Effects reads, in the store at url, how many times the effect of
	// each unit of work received there happened, by work id.
	Effects(ctx context.Context, url string) (map[string]int, error)
	// Delivered reads, in the store at url, the units of work sent from
	// there whose event the sender saw delivered (receipted as applied by
	// its addressee), by work id.
	Delivered(ctx context.Context, url string) (map[string]bool, error)
}

// NodeConfig is how the suite starts a node.
type NodeConfig struct {
	Name        string // the node's name on the bus
	DatabaseURL string // its store, migrated with App.Migrate
	NATSURL     string
	// Stream and Consumer are the topology, made by the suite before the
	// node starts: a node that ensures its stream and consumer itself must
	// do it with these, and its consumer must take its back-off from
	// Consumer.BackOff (inbox.Options.BackOff).
	Stream   bus.StreamConfig
	Consumer bus.ConsumerConfig
	// RelayFault and InboxFault are the hooks of the node's relay and
	// consumer (outbox.RelayOptions.Fault, inbox.Options.Fault); nil when
	// the stage injects none. When a hook stops its part, the node need
	// not go on: the suite stops it and starts a new one.
	RelayFault func(outbox.Stage) error
	InboxFault func(inbox.Stage) error
	// ReceiptTimeout is the relay's (outbox.RelayOptions.ReceiptTimeout):
	// short, so that events a killed broker lost are sent again in time.
	ReceiptTimeout time.Duration
}

// Node is a running node of the application.
type Node interface {
	// Send makes one unit of work that sends one event to the node to,
	// committed when Send returns, and returns the work's id.
	Send(ctx context.Context, to string) (string, error)
	// Stop stops the node and waits until it has stopped. A part a fault
	// hook stopped may make it return that error.
	Stop() error
}

// ErrKilled is what the suite's fault hooks return.
var ErrKilled = errors.New("bustest: killed")

const (
	sender   = "a"
	receiver = "b"
	// settleWithin bounds how long a stage may take to heal.
	settleWithin = 60 * time.Second
)

var (
	consumerConfig = bus.ConsumerConfig{
		AckWait:    2 * time.Second,
		BackOff:    []time.Duration{50 * time.Millisecond, 100 * time.Millisecond, 250 * time.Millisecond, 500 * time.Millisecond},
		MaxDeliver: 500,
	}
	receiptTimeout = 2 * time.Second
)

// Run runs the crash suite against app. Each stage has its own stores and
// broker, and runs in parallel with the others:
//
//   - RelayKilledBeforePublish: the sender's relay dies after it read a
//     batch and before it published it;
//   - RelayKilledBeforeMark: it dies after JetStream acknowledged the batch
//     and before it recorded it;
//   - ConsumerKilledAfterCommit: the receiver's consumer dies after it
//     committed a batch and before it acknowledged it;
//   - DuplicatePublish: every event is published again, once with its
//     Nats-Msg-Id (JetStream drops it) and once with a new one (as the
//     relay's re-send does), past JetStream's dedupe;
//   - BrokerKilled: the nats-server, a child process, dies by SIGKILL
//     while events are published and not yet applied;
//   - ReceiverPostgresKilled: the receiver's postmaster dies by SIGKILL
//     while events are published and not yet applied.
//
// After each, every unit of work must have had its effect exactly once at
// the receiver, and be delivered at the sender.
func Run(t *testing.T, app App) {
	t.Run("RelayKilledBeforePublish", func(t *testing.T) {
		t.Parallel()
		e := newEnv(t, app, natstest.New(t).ClientURL(), "")
		e.start(receiver, NodeConfig{})
		sent := make(chan struct{})
		hook, fired := killAt(outbox.BeforePublish, sent)
		a := e.start(sender, NodeConfig{RelayFault: hook})
		ids := e.send(a, 5)
		close(sent)
		e.wait(fired, "the relay was not killed before publishing")
		if n := e.streamMsgs(); n != 0 {
			t.Fatalf("the relay published %d events before it was killed", n)
		}
		e.stop(a)
		e.start(sender, NodeConfig{})
		e.settle(ids)
	})

	t.Run("RelayKilledBeforeMark", func(t *testing.T) {
		t.Parallel()
		e := newEnv(t, app, natstest.New(t).ClientURL(), "")
		e.start(receiver, NodeConfig{})
		sent := make(chan struct{})
		hook, fired := killAt(outbox.BeforeMark, sent)
		a := e.start(sender, NodeConfig{RelayFault: hook})
		ids := e.send(a, 5)
		close(sent)
		e.wait(fired, "the relay was not killed before recording a publish")
		if n := e.streamMsgs(); n == 0 {
			t.Fatal("nothing was published before the relay was killed")
		}
		if sent := e.sent(sender); sent.Published != 0 {
			t.Fatalf("the relay recorded %d publishes before it was killed", sent.Published)
		}
		e.stop(a)
		e.start(sender, NodeConfig{})
		e.settle(ids)
	})

	t.Run("ConsumerKilledAfterCommit", func(t *testing.T) {
		t.Parallel()
		e := newEnv(t, app, natstest.New(t).ClientURL(), "")
		hook, fired := killAt(inbox.AfterCommit, armed)
		b := e.start(receiver, NodeConfig{InboxFault: hook})
		a := e.start(sender, NodeConfig{})
		ids := e.send(a, 5)
		e.wait(fired, "the consumer was not killed after a commit")
		if eff := e.effects(); len(eff) == 0 {
			t.Fatal("the consumer was killed after a commit, and no effect is in its store")
		}
		if info := e.consumerInfo(receiver); info.NumAckPending == 0 && info.NumRedelivered == 0 {
			t.Fatal("the consumer was killed after a commit, and JetStream awaits no acknowledgement")
		}
		e.stop(b)
		e.start(receiver, NodeConfig{})
		e.settle(ids)
		if d := e.consumerInfo(receiver).Delivered.Consumer; d <= uint64(len(ids)) {
			t.Fatalf("%d deliveries of %d events: the stage did not exercise a redelivery", d, len(ids))
		}
	})

	t.Run("DuplicatePublish", func(t *testing.T) {
		t.Parallel()
		e := newEnv(t, app, natstest.New(t).ClientURL(), "")
		e.start(receiver, NodeConfig{})
		a := e.start(sender, NodeConfig{})
		ids := e.send(a, 5)
		e.settle(ids)
		before := e.consumerInfo(receiver).Delivered.Consumer
		k := e.republish(sender, receiver)
		poll.Until(t, settleWithin, func() error {
			if d := e.consumerInfo(receiver).Delivered.Consumer; d < before+uint64(k) {
				return fmt.Errorf("%d of %d copies delivered", d-before, k)
			}
			return e.idle()
		})
		e.settle(ids)
	})

	t.Run("BrokerKilled", func(t *testing.T) {
		t.Parallel()
		broker := natstest.NewProcess(t)
		e := newEnv(t, app, broker.ClientURL(), "")
		h := newHold(inbox.AfterCommit)
		e.start(receiver, NodeConfig{InboxFault: h.hook})
		t.Cleanup(h.release)
		a := e.start(sender, NodeConfig{})
		ids := e.inFlight(a, h, 10)
		broker.Kill()
		h.release()
		ids = append(ids, e.send(a, 3)...) // while the broker is down
		broker.Start()
		e.settle(ids)
	})

	t.Run("ReceiverPostgresKilled", func(t *testing.T) {
		t.Parallel()
		cluster := pgtest.NewCluster(t)
		ctx := context.Background()
		if err := cluster.CreateDatabase(ctx, receiver, ""); err != nil {
			t.Fatal(err)
		}
		if err := app.Migrate(ctx, cluster.URL(receiver)); err != nil {
			t.Fatal(err)
		}
		e := newEnv(t, app, natstest.New(t).ClientURL(), cluster.URL(receiver))
		h := newHold(inbox.AfterCommit)
		e.start(receiver, NodeConfig{InboxFault: h.hook})
		t.Cleanup(h.release)
		a := e.start(sender, NodeConfig{})
		ids := e.inFlight(a, h, 10)
		if err := cluster.Kill(ctx); err != nil {
			t.Fatal(err)
		}
		h.release()
		ids = append(ids, e.send(a, 3)...) // arriving while the store is down
		if err := cluster.Restart(ctx); err != nil {
			t.Fatal(err)
		}
		e.settle(ids)
	})
}

// env is one stage's world: a broker, a sender's and a receiver's store,
// and the topology.
type env struct {
	t     *testing.T
	app   App
	nats  string
	js    jetstream.JetStream
	urls  map[string]string
	pools map[string]*pgxpool.Pool
}

// newEnv makes the stores (receiverURL, if not empty, is the receiver's,
// migrated already), connects to the broker at natsURL and makes the
// stream and the two nodes' consumers.
func newEnv(t *testing.T, app App, natsURL, receiverURL string) *env {
	t.Helper()
	ctx := context.Background()
	e := &env{t: t, app: app, nats: natsURL, urls: map[string]string{}, pools: map[string]*pgxpool.Pool{}}
	tpl := fmt.Sprintf("bustest %T", app)
	e.urls[sender] = pgtest.New(t, tpl, app.Migrate)
	if receiverURL == "" {
		receiverURL = pgtest.New(t, tpl, app.Migrate)
	}
	e.urls[receiver] = receiverURL
	for n, url := range e.urls {
		pool, err := pgxpool.New(ctx, url)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(pool.Close)
		e.pools[n] = pool
	}
	nc, err := nats.Connect(natsURL, nats.MaxReconnects(-1), nats.ReconnectWait(100*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	if e.js, err = jetstream.New(nc); err != nil {
		t.Fatal(err)
	}
	if _, err := bus.EnsureStream(ctx, e.js, bus.StreamConfig{}); err != nil {
		t.Fatal(err)
	}
	for _, n := range []string{sender, receiver} {
		if _, err := bus.EnsureConsumer(ctx, e.js, n, consumerConfig); err != nil {
			t.Fatal(err)
		}
	}
	return e
}

// running is a started node, stopped once.
type running struct {
	Node
	once sync.Once
	err  error
}

func (r *running) stop() error {
	r.once.Do(func() { r.err = r.Node.Stop() })
	return r.err
}

// start starts node name with c's hooks; it is stopped when the test ends.
func (e *env) start(name string, c NodeConfig) *running {
	e.t.Helper()
	c.Name, c.DatabaseURL, c.NATSURL = name, e.urls[name], e.nats
	c.Consumer, c.ReceiptTimeout = consumerConfig, receiptTimeout
	n, err := e.app.Start(context.Background(), c)
	if err != nil {
		e.t.Fatalf("start node %s: %v", name, err)
	}
	r := &running{Node: n}
	e.t.Cleanup(func() {
		if err := r.stop(); err != nil && !killed(err) {
			e.t.Errorf("stop node %s: %v", name, err)
		}
	})
	return r
}

// stop stops a node; the error of a part the suite killed is expected.
func (e *env) stop(r *running) {
	e.t.Helper()
	if err := r.stop(); err != nil && !killed(err) {
		e.t.Fatalf("stop node: %v", err)
	}
}

func killed(err error) bool {
	return errors.Is(err, ErrKilled) || errors.Is(err, outbox.ErrFault) || errors.Is(err, inbox.ErrFault)
}

// send makes k units of work on n, each sending an event to the receiver.
func (e *env) send(n Node, k int) []string {
	e.t.Helper()
	ids := make([]string, k)
	for i := range ids {
		id, err := n.Send(context.Background(), receiver)
		if err != nil {
			e.t.Fatalf("send: %v", err)
		}
		ids[i] = id
	}
	return ids
}

// inFlight sends k units of work while the receiver's consumer is held
// after its first commit, and returns once all of them are published and
// not all applied: work the broker or the receiver's store can now lose.
func (e *env) inFlight(a Node, h *hold, k int) []string {
	e.t.Helper()
	ids := e.send(a, 1)
	e.wait(h.held, "the receiver's consumer did not commit anything")
	ids = append(ids, e.send(a, k-1)...)
	poll.Until(e.t, settleWithin, func() error {
		if s := e.sent(sender); s.Published < int64(k) {
			return fmt.Errorf("%d of %d events published", s.Published, k)
		}
		return nil
	})
	if eff := e.effects(); len(eff) >= k {
		e.t.Fatalf("all %d units of work were applied already: nothing is in flight", k)
	}
	if info := e.consumerInfo(receiver); info.NumPending+uint64(info.NumAckPending) == 0 {
		e.t.Fatal("the receiver's consumer has nothing pending: nothing is in flight")
	}
	return ids
}

// wait waits for ch to close.
func (e *env) wait(ch <-chan struct{}, failure string) {
	e.t.Helper()
	select {
	case <-ch:
	case <-time.After(settleWithin):
		e.t.Fatal(failure)
	}
}

// settle waits until every unit of work in ids had its effect at the
// receiver and is delivered at the sender, and nothing is left in flight,
// then checks that every effect happened exactly once.
func (e *env) settle(ids []string) {
	e.t.Helper()
	poll.Until(e.t, settleWithin, func() error {
		eff := e.effects()
		e.atMostOnce(eff)
		for _, id := range ids {
			if eff[id] == 0 {
				return fmt.Errorf("work %s has had no effect at the receiver", id)
			}
		}
		del, err := e.app.Delivered(context.Background(), e.urls[sender])
		if err != nil {
			return err
		}
		for _, id := range ids {
			if !del[id] {
				return fmt.Errorf("work %s is not delivered at the sender", id)
			}
		}
		return e.idle()
	})
	eff := e.effects()
	e.atMostOnce(eff)
	if extra := slices.DeleteFunc(slices.Collect(maps.Keys(eff)), func(id string) bool { return slices.Contains(ids, id) }); len(extra) > 0 {
		e.t.Fatalf("effects of work never sent: %v", extra)
	}
}

// atMostOnce fails the test for any work whose effect happened twice.
func (e *env) atMostOnce(eff map[string]int) {
	e.t.Helper()
	for id, n := range eff {
		if n > 1 {
			e.t.Fatalf("work %s had its effect %d times", id, n)
		}
	}
}

// idle returns nil once neither node's consumer has anything in flight.
func (e *env) idle() error {
	for _, n := range []string{sender, receiver} {
		if err := ConsumerIdle(context.Background(), e.js, n); err != nil {
			return err
		}
	}
	return nil
}

func (e *env) effects() map[string]int {
	e.t.Helper()
	eff, err := e.app.Effects(context.Background(), e.urls[receiver])
	if err != nil {
		e.t.Fatalf("read effects: %v", err)
	}
	return eff
}

// sent are node's outbox counts over every event type.
func (e *env) sent(node string) OutboxCounts {
	e.t.Helper()
	c, err := Counts(context.Background(), e.pools[node])
	if err != nil {
		e.t.Fatal(err)
	}
	var s OutboxCounts
	for _, o := range c.Outbox {
		s.Written, s.Published, s.Receipted = s.Written+o.Written, s.Published+o.Published, s.Receipted+o.Receipted
	}
	return s
}

func (e *env) streamMsgs() uint64 {
	e.t.Helper()
	s, err := e.js.Stream(context.Background(), bus.Stream)
	if err != nil {
		e.t.Fatal(err)
	}
	info, err := s.Info(context.Background())
	if err != nil {
		e.t.Fatal(err)
	}
	return info.State.Msgs
}

func (e *env) consumerInfo(node string) *jetstream.ConsumerInfo {
	e.t.Helper()
	c, err := e.js.Consumer(context.Background(), bus.Stream, node)
	if err != nil {
		e.t.Fatal(err)
	}
	info, err := c.Info(context.Background())
	if err != nil {
		e.t.Fatal(err)
	}
	return info
}

// republish publishes every message from one node to another again,
// first with its own Nats-Msg-Id, which JetStream must drop, then with a
// new one, which gets past its dedupe. It returns how many copies got in.
func (e *env) republish(from, to string) int {
	e.t.Helper()
	ctx := context.Background()
	s, err := e.js.Stream(ctx, bus.Stream)
	if err != nil {
		e.t.Fatal(err)
	}
	info, err := s.Info(ctx)
	if err != nil {
		e.t.Fatal(err)
	}
	prefix := bus.Subject(from, to, "") // refbus.<from>.<to>.
	n := 0
	for seq := info.State.FirstSeq; seq <= info.State.LastSeq; seq++ {
		raw, err := s.GetMsg(ctx, seq)
		if err != nil {
			e.t.Fatal(err)
		}
		if !strings.HasPrefix(raw.Subject, prefix) {
			continue
		}
		m := &nats.Msg{Subject: raw.Subject, Header: nats.Header{}, Data: raw.Data}
		for k, v := range raw.Header {
			m.Header[k] = slices.Clone(v)
		}
		ack, err := e.js.PublishMsg(ctx, m)
		if err != nil {
			e.t.Fatal(err)
		}
		if !ack.Duplicate {
			e.t.Fatalf("JetStream kept a copy of message %d with the same Nats-Msg-Id", seq)
		}
		m.Header.Set(nats.MsgIdHdr, m.Header.Get(nats.MsgIdHdr)+"#bustest")
		if ack, err = e.js.PublishMsg(ctx, m); err != nil {
			e.t.Fatal(err)
		}
		if ack.Duplicate {
			e.t.Fatalf("JetStream dropped a copy of message %d with a new Nats-Msg-Id", seq)
		}
		n++
	}
	if n == 0 {
		e.t.Fatal("no message to publish again")
	}
	return n
}

// killAt returns a hook that kills its part at stage, once armed is
// closed, and keeps it dead: every later call fails too. fired closes when
// it first fails. Until armed, the part waits at stage: the suite arms the
// hook once its work is committed, since an application whose node stops
// with any of its parts (as a process does) would take no more.
func killAt[S comparable](stage S, armed <-chan struct{}) (hook func(S) error, fired <-chan struct{}) {
	ch := make(chan struct{})
	var once sync.Once
	var dead bool
	var mu sync.Mutex
	return func(s S) error {
		if s == stage {
			<-armed
			mu.Lock()
			dead = true
			once.Do(func() { close(ch) })
			mu.Unlock()
		}
		mu.Lock()
		defer mu.Unlock()
		if dead {
			return ErrKilled
		}
		return nil
	}, ch
}

// armed is a channel already closed: a hook armed from the start.
var armed = func() chan struct{} {
	ch := make(chan struct{})
	close(ch)
	return ch
}()

// hold is a hook that, the first time its stage comes, holds its part
// there until released.
type hold struct {
	stage       inbox.Stage
	held, freed chan struct{}
	heldOnce    sync.Once
	freeOnce    sync.Once
}

func newHold(stage inbox.Stage) *hold {
	return &hold{stage: stage, held: make(chan struct{}), freed: make(chan struct{})}
}

func (h *hold) hook(s inbox.Stage) error {
	if s != h.stage {
		return nil
	}
	first := false
	h.heldOnce.Do(func() { first = true; close(h.held) })
	if first {
		select {
		case <-h.freed:
		case <-time.After(2 * settleWithin):
		}
	}
	return nil
}

func (h *hold) release() { h.freeOnce.Do(func() { close(h.freed) }) }
