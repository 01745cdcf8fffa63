// Package nodetest runs nodes for tests: a network of nodes of any kinds
// on one NATS server (embedded, or a child process a test can kill), each
// with its own fresh database, and the helpers tests use to drive them
// from outside, as an agency system would. Only tests import it; their
// TestMain must call pgtest.Main.
package nodetest

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	ce "github.com/cloudevents/sdk-go/v2/event"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/nats-io/nkeys"

	"github.com/refbus/refbus/pkg/bus"
	"github.com/refbus/refbus/pkg/bustest"
	"github.com/refbus/refbus/pkg/event"
	"github.com/refbus/refbus/pkg/natstest"
	"github.com/refbus/refbus/pkg/pgmigrate"
	"github.com/refbus/refbus/pkg/pgtest"
	"github.com/refbus/refbus/pkg/poll"
	"github.com/refbus/refbus/schemas"
	"github.com/refbus/refbus/services/internal/core"
	"github.com/refbus/refbus/services/internal/core/app"
	"github.com/refbus/refbus/services/internal/core/directory"
	"github.com/refbus/refbus/services/internal/core/kind"
	"github.com/refbus/refbus/services/internal/network"
)

// FastConsumer redelivers quickly, so fault tests finish in seconds.
var FastConsumer = bus.ConsumerConfig{AckWait: time.Second, BackOff: []time.Duration{500 * time.Millisecond}, MaxDeliver: 50}

// NetworkKey is the network key every test node shares.
var NetworkKey = []byte("test network key, 32 bytes or more, shared by all")

// Network is a set of nodes on one NATS server, each with its own
// database.
type Network struct {
	T *testing.T
	// NATS is the embedded server, nil when the network runs on a child
	// process (Proc) or a cluster.
	NATS *natstest.Server
	// Proc is the server in a child process, when the network has one.
	Proc *natstest.Process
	// NATSURL is where nodes connect.
	NATSURL string

	mu         sync.Mutex
	admin      jetstream.JetStream
	networkKey nkeys.KeyPair
	ids        map[string]Identity
	urls       map[string]string
	kinds      map[string]kind.Kind
	nodes      map[string]*Node
}

// Node is a running node.
type Node struct {
	*core.Node
	HTTP   *httptest.Server
	cancel context.CancelFunc
	done   chan error
	once   sync.Once
	err    error
}

// New starts an embedded NATS server for a network with no nodes yet.
func New(t *testing.T) *Network {
	t.Helper()
	srv := natstest.New(t)
	return newNetwork(t, srv.ClientURL(), srv, nil)
}

// NewOnProcess starts a network whose NATS server is a child process, which
// the test may kill (Proc.Kill) and start again (Proc.Start).
func NewOnProcess(t *testing.T) *Network {
	t.Helper()
	p := natstest.NewProcess(t)
	return newNetwork(t, p.ClientURL(), nil, p)
}

// NewOn makes a network on a NATS server the test runs itself, such as a
// cluster (natsURL lists every node).
func NewOn(t *testing.T, natsURL string) *Network { return newNetwork(t, natsURL, nil, nil) }

func newNetwork(t *testing.T, url string, srv *natstest.Server, p *natstest.Process) *Network {
	return &Network{T: t, NATS: srv, Proc: p, NATSURL: url, urls: map[string]string{}, kinds: map[string]kind.Kind{}, nodes: map[string]*Node{}}
}

// Logger logs at info when the tests run with -v, and discards otherwise.
func Logger(t *testing.T) *slog.Logger {
	if testing.Verbose() {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelInfo})).With("test", t.Name())
	}
	return slog.New(slog.DiscardHandler)
}

// NewDB returns a fresh database migrated as the store of a node of kind
// k. The template is migrated once per kind and test process: kinds are
// told apart by their migrations, not only their names.
func NewDB(t testing.TB, k kind.Kind) string {
	return pgtest.New(t, "node_"+k.Name()+"_"+lineDigest(t, k.Migrations()), func(ctx context.Context, url string) error {
		return core.Migrate(ctx, url, k, slog.New(slog.DiscardHandler))
	})
}

// lineDigest names a migration line by its files' names and contents.
func lineDigest(t testing.TB, l pgmigrate.Line) string {
	h := sha256.New()
	if l.FS != nil {
		err := fs.WalkDir(l.FS, ".", func(p string, d fs.DirEntry, err error) error {
			if err != nil || d.IsDir() {
				return err
			}
			b, err := fs.ReadFile(l.FS, p)
			fmt.Fprintf(h, "%s %d\n", p, len(b))
			h.Write(b)
			return err
		})
		if err != nil {
			t.Fatalf("read the migrations of %s: %v", l.Schema, err)
		}
	}
	return hex.EncodeToString(h.Sum(nil))[:8]
}

// SetDB makes name's store the database at url (for a node started later).
func (n *Network) SetDB(name string, url string) {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.urls[name] = url
}

// DB is the database url of node name's store.
func (n *Network) DB(name string) string {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.urls[name]
}

// Start runs node name of kind k, on a fresh database the first time and
// on the same one after; tune, if set, changes its config first. It is
// stopped at the end of the test.
func (n *Network) Start(name string, k kind.Kind, tune func(*core.Config)) *Node {
	n.T.Helper()
	n.mu.Lock()
	url, ok := n.urls[name]
	n.mu.Unlock()
	if !ok {
		url = NewDB(n.T, k)
		n.SetDB(name, url)
	}
	cfg := core.Config{Node: name, DatabaseURL: url, NATSURL: n.NATSURL, Consumer: FastConsumer, NetworkKey: NetworkKey}
	cfg.Relay.ReceiptTimeout = 10 * time.Second
	if tune != nil {
		tune(&cfg)
	}
	n.Provision(name, cfg)
	n.registered(name, k.Name(), &cfg)
	ctx, cancel := context.WithCancel(context.Background())
	node, err := core.New(ctx, cfg, k, Logger(n.T))
	if err != nil {
		cancel()
		n.T.Fatalf("start %s: %v", name, err)
	}
	nd := &Node{Node: node, HTTP: httptest.NewServer(node.Handler()), cancel: cancel, done: make(chan error, 1)}
	go func() { nd.done <- node.Run(ctx) }()
	n.mu.Lock()
	n.nodes[name], n.kinds[name] = nd, k
	n.mu.Unlock()
	n.T.Cleanup(func() { _ = nd.Stop() })
	return nd
}

// Provision makes, as the network's administrator would, what node name
// needs on NATS with cfg's stream and consumer settings: the stream, the
// buckets and its consumer.
func (n *Network) Provision(name string, cfg core.Config) {
	n.T.Helper()
	if err := Provision(n.T.Context(), n.adminJS(), name, cfg); err != nil {
		n.T.Fatal(err)
	}
}

// adminJS is the network administrator's connection.
func (n *Network) adminJS() jetstream.JetStream {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.admin == nil {
		n.admin = n.JetStream()
	}
	return n.admin
}

// Provision makes what node name needs on the NATS that js reaches, with
// cfg's stream and consumer settings, as the network's administrator
// would.
func Provision(ctx context.Context, js jetstream.JetStream, name string, cfg core.Config) error {
	if err := network.Provision(ctx, js, cfg.Stream); err != nil {
		return err
	}
	return network.AddConsumer(ctx, js, name, cfg.Consumer)
}

// Restart stops node name and starts it again, of the same kind, on the
// same store.
func (n *Network) Restart(name string, tune func(*core.Config)) *Node {
	n.T.Helper()
	_ = n.Node(name).Stop()
	n.mu.Lock()
	k := n.kinds[name]
	n.mu.Unlock()
	return n.Start(name, k, tune)
}

// Done is the node's Run result, when it stops by itself.
func (nd *Node) Done() <-chan error { return nd.done }

// Stop cancels the node and waits for it; safe to call twice.
func (nd *Node) Stop() error {
	nd.once.Do(func() {
		nd.cancel()
		nd.err = <-nd.done
		nd.HTTP.Close()
		nd.Close()
	})
	return nd.err
}

// Node is the running node name.
func (n *Network) Node(name string) *Node {
	n.mu.Lock()
	defer n.mu.Unlock()
	nd := n.nodes[name]
	if nd == nil {
		n.T.Fatalf("no node %s in the network", name)
	}
	return nd
}

// App is node name's application.
func (n *Network) App(name string) *app.App { return n.Node(name).App() }

// Do sends an HTTP request to node name and returns the status, the body
// and the headers.
func (n *Network) Do(name, method, path, body string) (int, string, http.Header) {
	n.T.Helper()
	req, err := http.NewRequest(method, n.Node(name).HTTP.URL+path, strings.NewReader(body))
	if err != nil {
		n.T.Fatal(err)
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		n.T.Fatalf("%s %s: %v", method, path, err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	return res.StatusCode, string(b), res.Header
}

// Decode decodes a JSON body or fails the test.
func Decode[T any](t testing.TB, body string) T {
	t.Helper()
	var v T
	if err := json.Unmarshal([]byte(body), &v); err != nil {
		t.Fatalf("decode %q: %v", body, err)
	}
	return v
}

// Eventually and Consistently wait on a condition (package poll).
var (
	Eventually   = poll.Until
	Consistently = poll.Always
)

// MustUUID parses s or fails the test.
func MustUUID(t testing.TB, s string) uuid.UUID {
	t.Helper()
	id, err := uuid.Parse(s)
	if err != nil {
		t.Fatalf("not a uuid: %q", s)
	}
	return id
}

// Referral reads a referral as node name sees it.
func (n *Network) Referral(name string, id uuid.UUID) (app.Referral, error) {
	return n.App(name).Referral(context.Background(), id)
}

// WantStatus holds once node name sees referral id in status.
func (n *Network) WantStatus(name string, id uuid.UUID, status string) func() error {
	return func() error {
		r, err := n.Referral(name, id)
		if err != nil {
			return err
		}
		if r.Status != status {
			return fmt.Errorf("%s sees referral %s as %q, want %q", name, id, r.Status, status)
		}
		return nil
	}
}

// Both waits until both parties of r see it in status.
func (n *Network) Both(r app.Referral, status string) {
	n.T.Helper()
	Eventually(n.T, 30*time.Second, n.WantStatus(r.FromAgency, r.ID, status))
	Eventually(n.T, 30*time.Second, n.WantStatus(r.ToAgency, r.ID, status))
}

// Consent records at node from the family's consent to share every
// category of data with organization to for a day, and returns its id.
func (n *Network) Consent(from, to string) uuid.UUID {
	n.T.Helper()
	c, err := n.App(from).RecordConsent(context.Background(), app.NewConsent{
		GivenBy: "mother (legal representative)", ToOrg: to, Purpose: "help for the family",
		DataCategories: schemas.Categories(), ExpiresAt: time.Now().Add(24 * time.Hour),
	})
	if err != nil {
		n.T.Fatalf("%s records consent for %s: %v", from, to, err)
	}
	return c.ID
}

// Consented adds to a JSON referral body from node from the consent to
// share with the organization it names (to_org).
func (n *Network) Consented(from, body string) string {
	n.T.Helper()
	var b struct {
		ToOrg string `json:"to_org"`
	}
	if err := json.Unmarshal([]byte(body), &b); err != nil {
		n.T.Fatalf("referral body %s: %v", body, err)
	}
	return strings.TrimSuffix(body, "}") + fmt.Sprintf(`,"consent_id":%q}`, n.Consent(from, b.ToOrg))
}

// Refer posts to node from a referral to organization to over HTTP (extra
// is more JSON fields, such as `"from_org":"..."` or `"work":{...}`, or
// "") and returns it. A node that names no organizations hosts one named
// after it.
func (n *Network) Refer(from, to, service, caseID, extra string) app.Referral {
	n.T.Helper()
	body := fmt.Sprintf(`{"to_org":%q,"service":%q,"note":"scenario"`, to, service)
	if extra != "" {
		body += "," + extra
	}
	if caseID != "" {
		body += fmt.Sprintf(`,"case_id":%q`, caseID)
	}
	status, res, _ := n.Do(from, "POST", "/api/v1/referrals", n.Consented(from, body+"}"))
	if status != 201 {
		n.T.Fatalf("%s refers to %s: %d %s", from, to, status, res)
	}
	return Decode[app.Referral](n.T, res)
}

// Move makes a move over HTTP and fails the test unless it answers 200.
func (n *Network) Move(name string, id uuid.UUID, mv, body string) app.Referral {
	n.T.Helper()
	status, res, _ := n.Do(name, "POST", "/api/v1/referrals/"+id.String()+"/"+mv, body)
	if status != 200 {
		n.T.Fatalf("%s %s %s: %d %s", name, mv, id, status, res)
	}
	return Decode[app.Referral](n.T, res)
}

// Case reads a case as node name sees it.
func (n *Network) Case(name string, id uuid.UUID) app.Case {
	n.T.Helper()
	status, res, _ := n.Do(name, "GET", "/api/v1/cases/"+id.String(), "")
	if status != 200 {
		n.T.Fatalf("%s case %s: %d %s", name, id, status, res)
	}
	return Decode[app.Case](n.T, res)
}

// FreeBeds reads, from node name's view of the directory, the free places
// of service at organization at.
func (n *Network) FreeBeds(name, at, service string) (int, error) {
	status, body, _ := n.Do(name, "GET", "/api/v1/directory", "")
	if status != 200 {
		return 0, fmt.Errorf("directory: %d %s", status, body)
	}
	d := Decode[struct {
		Nodes []directory.Listing `json:"nodes"`
	}](n.T, body)
	if h, ok := directory.Find(d.Nodes, at); ok {
		if o, ok := h.Org.Offer(service); ok && o.FreeBeds != nil {
			return *o.FreeBeds, nil
		}
	}
	return 0, fmt.Errorf("the directory has no places of %s's %s: %s", at, service, body)
}

// WantFreeBeds waits until node name sees want free places of service at
// organization at.
func (n *Network) WantFreeBeds(name, at, service string, want int) {
	n.T.Helper()
	Eventually(n.T, 30*time.Second, func() error {
		got, err := n.FreeBeds(name, at, service)
		if err == nil && got != want {
			err = fmt.Errorf("%s sees %d free places in %s at %s, want %d", name, got, service, at, want)
		}
		return err
	})
}

// Counts counts node name's bus tables.
func (n *Network) Counts(name string) bustest.Tally {
	n.T.Helper()
	conn, err := pgx.Connect(context.Background(), n.DB(name))
	if err != nil {
		n.T.Fatal(err)
	}
	defer conn.Close(context.Background())
	c, err := bustest.Counts(context.Background(), conn)
	if err != nil {
		n.T.Fatal(err)
	}
	return c
}

// JetStream is a client of the network's NATS, closed at the end of the
// test.
func (n *Network) JetStream() jetstream.JetStream {
	n.T.Helper()
	nc, err := nats.Connect(n.NATSURL)
	if err != nil {
		n.T.Fatal(err)
	}
	n.T.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	if err != nil {
		n.T.Fatal(err)
	}
	return js
}

// ConsumerIdle holds once node name's consumer has nothing pending or
// unacknowledged (bustest.ConsumerIdle).
func (n *Network) ConsumerIdle(name string) func() error {
	js := n.JetStream()
	return func() error { return bustest.ConsumerIdle(context.Background(), js, name) }
}

// StoreText is every row of every table of node name's store, in every
// schema but Postgres's own, as text (bytea columns in hex).
func (n *Network) StoreText(name string) string {
	n.T.Helper()
	var sb strings.Builder
	for _, t := range n.Tables(name) {
		for _, row := range n.Rows(name, t) {
			sb.WriteString(row)
			sb.WriteByte('\n')
		}
	}
	return sb.String()
}

// Tables lists the tables of node name's store as schema.table, sorted.
func (n *Network) Tables(name string) []string {
	n.T.Helper()
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, n.DB(name))
	if err != nil {
		n.T.Fatal(err)
	}
	defer conn.Close(ctx)
	rows, err := conn.Query(ctx, `SELECT table_schema || '.' || table_name FROM information_schema.tables
		WHERE table_schema NOT IN ('pg_catalog', 'information_schema') AND table_type = 'BASE TABLE' ORDER BY 1`)
	if err != nil {
		n.T.Fatal(err)
	}
	out, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		n.T.Fatal(err)
	}
	return out
}

// FilesHold reports whether any file of node name's database, as it lies
// on disk after a checkpoint, holds s: old row versions included, which
// no query or dump shows.
func (n *Network) FilesHold(name, s string) bool {
	n.T.Helper()
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, n.DB(name))
	if err != nil {
		n.T.Fatal(err)
	}
	defer conn.Close(ctx)
	var oid uint32
	if err := conn.QueryRow(ctx, "SELECT oid FROM pg_database WHERE datname = current_database()").Scan(&oid); err != nil {
		n.T.Fatal(err)
	}
	if _, err := conn.Exec(ctx, "CHECKPOINT"); err != nil {
		n.T.Fatal(err)
	}
	dir := filepath.Join(pgtest.Cluster(n.T).Dir(), "base", strconv.FormatUint(uint64(oid), 10))
	entries, err := os.ReadDir(dir)
	if err != nil {
		n.T.Fatal(err)
	}
	for _, e := range entries {
		b, err := os.ReadFile(filepath.Join(dir, e.Name()))
		if err != nil && !errors.Is(err, fs.ErrNotExist) {
			n.T.Fatal(err)
		}
		if bytes.Contains(b, []byte(s)) {
			return true
		}
	}
	return false
}

// StreamEvents are the events about subject (a referral's id) on the
// stream, in stream order, receipts left out (they may come several to a
// message).
func (n *Network) StreamEvents(subject string) []*ce.Event {
	n.T.Helper()
	var out []*ce.Event
	for _, m := range n.streamMessages() {
		if strings.HasSuffix(m.Subject, ".receipt") {
			continue
		}
		e, err := event.Decode(m.Header, m.Data)
		if err != nil {
			n.T.Fatal(err)
		}
		if e.Subject() == subject {
			out = append(out, e)
		}
	}
	return out
}

// EventsTo reports whether any event on the stream addressed to node name
// (any node, if name is "") contains s.
func (n *Network) EventsTo(name, s string) bool {
	n.T.Helper()
	for _, m := range n.streamMessages() {
		if _, to, _ := bus.ParseSubject(m.Subject); (to == name || name == "") && strings.Contains(string(m.Data), s) {
			return true
		}
	}
	return false
}

// streamMessages are the messages on the stream, in order.
func (n *Network) streamMessages() []*jetstream.RawStreamMsg {
	n.T.Helper()
	ctx := context.Background()
	st, err := n.JetStream().Stream(ctx, bus.Stream)
	if err != nil {
		n.T.Fatal(err)
	}
	info, err := st.Info(ctx)
	if err != nil {
		n.T.Fatal(err)
	}
	if info.State.Msgs == 0 {
		return nil // FirstSeq and LastSeq are 0: there is no message 0 to read
	}
	var out []*jetstream.RawStreamMsg
	for seq := info.State.FirstSeq; seq <= info.State.LastSeq; seq++ {
		m, err := st.GetMsg(ctx, seq)
		if err != nil {
			n.T.Fatalf("read stream message %d: %v", seq, err)
		}
		out = append(out, m)
	}
	return out
}
