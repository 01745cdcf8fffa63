package core_test

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/refbus/refbus/pkg/bus"
	"github.com/refbus/refbus/pkg/bustest"
	"github.com/refbus/refbus/pkg/event"
	"github.com/refbus/refbus/pkg/natstest"
	"github.com/refbus/refbus/schemas"
	"github.com/refbus/refbus/services/internal/core"
	"github.com/refbus/refbus/services/internal/core/app"
	"github.com/refbus/refbus/services/internal/core/nodetest"
)

// On a three-server NATS cluster whose stream has three replicas, the
// server that leads REFERRALS is killed (SIGKILL of its process) while
// referrals flow, and started again later. Every referral sent before,
// during and after is received once, its effect happens once at the
// receiver, and the sender sees it receipted; the stream kept every
// request the cluster acknowledged, and keeps three replicas under a new
// leader.
func TestClusterLosesStreamLeaderMidFlow(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	cl := natstest.NewProcessCluster(t, 3)
	n := nodetest.NewOn(t, cl.URLs())
	tune := replicated(3)
	n.Start("clinic", plain(healthCheck), tune)
	n.Start("legal_aid", ledgerKind(legalHelp), tune)

	f := startFlow(t, n, "clinic", "legal_aid", "legal_help", 20*time.Millisecond)
	nodetest.Eventually(t, 30*time.Second, f.reached(150, 100))

	var lost *natstest.Process
	nodetest.Eventually(t, 10*time.Second, func() (err error) {
		lost, err = cl.StreamLeader(bus.Stream)
		return err
	})
	// The leader dies in a rush of referrals, with some of them on their
	// way at every stage: in the sender's outbox, published, stored,
	// delivered, applied, receipted.
	rushed := f.count()
	f.rush(300)
	nodetest.Eventually(t, 10*time.Second, f.reached(rushed+100, 0))
	lost.Kill()
	// No event is stored while the stream has no leader: what is received
	// and receipted just after the kill was, nearly all, before it.
	atKill, heardAtKill := f.count(), len(heard(t, n, "legal_aid"))
	receiptedAtKill := n.Counts("clinic").Outbox[schemas.TypeRequested].Receipted
	var leader *natstest.Process
	// A new leader takes 4 to 9s to elect (raft's timeouts), twice that
	// if the first vote splits.
	nodetest.Eventually(t, 45*time.Second, func() (err error) {
		leader, err = cl.StreamLeader(bus.Stream)
		if err == nil && leader == lost {
			err = fmt.Errorf("%s, killed, still leads the stream", lost.Name())
		}
		return err
	})
	// Referrals reach the receiver through the new leader while the lost
	// server is still down.
	nodetest.Eventually(t, 30*time.Second, f.reached(0, len(heard(t, n, "legal_aid"))+100))
	atStart := f.count()
	lost.Start()
	nodetest.Eventually(t, 30*time.Second, f.reached(atStart+150, 0))
	ids := f.stop()
	t.Logf("%d referrals: %d made before %s, leading the stream, was killed (%d received, %d receipted just after); "+
		"%d made while it was down (new leader %s), %d after it came back",
		len(ids), atKill, lost.Name(), heardAtKill, receiptedAtKill, atStart-atKill, leader.Name(), len(ids)-atStart)

	receivedOnce(t, n, "clinic", "legal_aid", ids, "received")
	k := int64(len(ids))
	if c := n.Counts("clinic"); c.Outbox[schemas.TypeRequested] != (bustest.OutboxCounts{Written: k, Published: k, Receipted: k}) || c.Awaiting != 0 {
		t.Errorf("clinic's outbox of requests: %+v, %d awaiting a receipt; want %d written, published and receipted, none awaiting",
			c.Outbox[schemas.TypeRequested], c.Awaiting, k)
	}
	if got := n.Counts("legal_aid").Applied(schemas.TypeRequested); got != k {
		t.Errorf("legal_aid's inbox applied %d requests, want %d", got, k)
	}
	total := 0
	for _, c := range heard(t, n, "legal_aid") {
		total += c
	}
	if total != len(ids) {
		t.Errorf("legal_aid's kind was told of %d receptions, want %d", total, len(ids))
	}

	// The stream keeps three replicas, the lost server among them again
	// and caught up.
	js := n.JetStream()
	nodetest.Eventually(t, 30*time.Second, func() error {
		s, err := js.Stream(ctx, bus.Stream)
		if err != nil {
			return err
		}
		info := s.CachedInfo()
		if info.Config.Replicas != 3 || info.Cluster == nil || info.Cluster.Leader == "" || len(info.Cluster.Replicas) != 2 {
			return fmt.Errorf("the stream has %d replicas, cluster %+v; want 3, a leader and 2 followers", info.Config.Replicas, info.Cluster)
		}
		peers := []string{info.Cluster.Leader}
		for _, r := range info.Cluster.Replicas {
			if !r.Current || r.Offline {
				return fmt.Errorf("replica %s of the stream is not current", r.Name)
			}
			peers = append(peers, r.Name)
		}
		if !slices.Contains(peers, lost.Name()) {
			return fmt.Errorf("the stream is on %v, no longer on %s", peers, lost.Name())
		}
		return nil
	})

	// Every request the cluster acknowledged is still in the stream as it
	// was first published, not only as a copy the sender sent again for
	// want of a receipt (which would hide its loss from the checks above).
	// A first publish stored twice is no loss: the receiver applies it once.
	// The restarted server may still be catching up on the cluster's
	// metadata, and the JetStream API answer "no responders" meanwhile.
	var reqs map[uuid.UUID]sent
	nodetest.Eventually(t, 30*time.Second, func() (err error) {
		reqs, err = requests(t, js, "clinic", "legal_aid")
		return err
	})
	again, twice := 0, 0
	for _, id := range ids {
		if reqs[id].first == 0 {
			t.Errorf("the stream lost referral %s's request: it holds %d copies sent again, not the one the cluster acknowledged", id, reqs[id].again)
		}
		again += reqs[id].again
		twice += max(reqs[id].first-1, 0)
	}
	t.Logf("the stream holds a request for each of the %d referrals, %d more stored twice despite the dedupe, %d more sent again for want of a receipt",
		len(ids), twice, again)
}

// sent counts an event's copies in the stream: its first publish, and
// those sent again for want of a receipt.
type sent struct{ first, again int }

// requests reads every referral request from node from to node to in the
// stream, by referral.
func requests(t *testing.T, js jetstream.JetStream, from, to string) (map[uuid.UUID]sent, error) {
	t.Helper()
	ctx := context.Background()
	subject := bus.Subject(from, to, schemas.TypeRequested)
	s, err := js.Stream(ctx, bus.Stream)
	if err != nil {
		return nil, err
	}
	info, err := s.Info(ctx, jetstream.WithSubjectFilter(subject))
	if err != nil {
		return nil, err
	}
	total := int(info.State.Subjects[subject])
	cons, err := js.OrderedConsumer(ctx, bus.Stream, jetstream.OrderedConsumerConfig{FilterSubjects: []string{subject}})
	if err != nil {
		return nil, err
	}
	out := map[uuid.UUID]sent{}
	for read := 0; read < total; {
		batch, err := cons.Fetch(min(500, total-read), jetstream.FetchMaxWait(5*time.Second))
		if err != nil {
			return nil, err
		}
		k := 0
		for m := range batch.Messages() {
			k++
			e, err := event.Decode(m.Headers(), m.Data())
			if err != nil {
				t.Fatalf("stream message on %s: %v", m.Subject(), err)
			}
			id := nodetest.MustUUID(t, e.Subject())
			c := out[id]
			// A re-send carries the event's message id with a suffix, to
			// get past JetStream's dedupe.
			if m.Headers().Get(nats.MsgIdHdr) == event.MsgID(e) {
				c.first++
			} else {
				c.again++
			}
			out[id] = c
		}
		if err := batch.Error(); err != nil {
			return nil, err
		}
		if k == 0 {
			return nil, fmt.Errorf("read %d of the %d requests in the stream, then nothing", read, total)
		}
		read += k
	}
	return out, nil
}

// replicated is the change to a node's config that has the network's
// admin (nodetest's Provision, on the node's start) make the stream, the
// buckets and the consumers with the given number of replicas.
func replicated(replicas int) func(*core.Config) {
	return func(c *core.Config) {
		c.Stream = bus.StreamConfig{Replicas: replicas}
		// Receipts are published without waiting for the cluster's
		// acknowledgement, so those sent while the stream has no leader
		// are lost; the sender heals that by sending the event again
		// after ReceiptTimeout (a repeat is answered with a receipt
		// again), here after 5s instead of 2 minutes.
		c.Relay.ReceiptTimeout = 5 * time.Second
	}
}

// flow makes referrals from one node to another at a steady pace, as an
// agency system would, until stopped.
type flow struct {
	t     *testing.T
	n     *nodetest.Network
	to    string
	stopc chan struct{}
	rushc chan int
	done  chan struct{}
	once  sync.Once

	mu   sync.Mutex
	ids  []uuid.UUID
	errs int
	last error
}

// rushers make a rush of referrals side by side.
const rushers = 8

// startFlow makes a referral from node from to node to for service every
// pace, under one consent, until stop (or the end of the test).
func startFlow(t *testing.T, n *nodetest.Network, from, to, service string, pace time.Duration) *flow {
	t.Helper()
	consent := n.Consent(from, to)
	a := n.App(from)
	f := &flow{t: t, n: n, to: to, stopc: make(chan struct{}), rushc: make(chan int), done: make(chan struct{})}
	go func() {
		defer close(f.done)
		tick := time.NewTicker(pace)
		defer tick.Stop()
		one := func() {
			r, err := a.CreateReferral(context.Background(), app.NewReferral{ToOrg: to, ConsentID: consent, Service: service, Note: "flow"})
			f.mu.Lock()
			defer f.mu.Unlock()
			if err != nil {
				// Not made: an agency system would try again.
				f.errs++
				f.last = err
				return
			}
			f.ids = append(f.ids, r.ID)
		}
		for {
			select {
			case <-f.stopc:
				return
			case k := <-f.rushc:
				var wg sync.WaitGroup
				for range rushers {
					wg.Go(func() {
						for range k / rushers {
							one()
						}
					})
				}
				wg.Wait()
			case <-tick.C:
				one()
			}
		}
	}()
	t.Cleanup(func() {
		f.once.Do(func() { close(f.stopc) })
		<-f.done
	})
	return f
}

// rush makes k referrals at once, rushers at a time, faster than the
// relay sends them; then the flow goes on at its pace.
func (f *flow) rush(k int) { f.rushc <- k }

// count is how many referrals were made so far.
func (f *flow) count() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.ids)
}

// reached holds once at least made referrals were made and the
// receiver's kind was told of at least received of them.
func (f *flow) reached(made, received int) func() error {
	return func() error {
		if c := f.count(); c < made {
			return fmt.Errorf("%d referrals made, waiting for %d", c, made)
		}
		if received == 0 {
			return nil
		}
		if r := len(heard(f.t, f.n, f.to)); r < received {
			return fmt.Errorf("%d referrals received, waiting for %d", r, received)
		}
		return nil
	}
}

// stop stops the flow and returns the ids of the referrals it made. It
// fails the test if a referral could not be made: that writes only the
// sender's own store, and needs no broker.
func (f *flow) stop() []uuid.UUID {
	f.t.Helper()
	f.once.Do(func() { close(f.stopc) })
	<-f.done
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.errs > 0 {
		f.t.Errorf("%d referrals could not be made, the last: %v", f.errs, f.last)
	}
	return f.ids
}
