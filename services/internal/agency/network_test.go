package agency_test

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/refbus/refbus/pkg/bus"
	"github.com/refbus/refbus/pkg/natstest"
	"github.com/refbus/refbus/pkg/pgtest"
	"github.com/refbus/refbus/pkg/poll"
	"github.com/refbus/refbus/services/internal/agency"
	"github.com/refbus/refbus/sql/agency/migrations"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

// network is a set of agency services on one embedded NATS server, each
// with its own fresh database.
type network struct {
	t    *testing.T
	nats *natstest.Server // nil on a cluster: see natsURL
	// natsURL is where services connect; a cluster lists every node.
	natsURL string
	urls    map[string]string
	mu      sync.Mutex
	svcs    map[string]*running
}

type running struct {
	svc    *agency.Service
	http   *httptest.Server
	cancel context.CancelFunc
	done   chan error
}

// fastConsumer redelivers quickly so fault tests finish in seconds.
var fastConsumer = bus.ConsumerConfig{AckWait: time.Second, BackOff: []time.Duration{500 * time.Millisecond}, MaxDeliver: 50}

func newNetwork(t *testing.T, agencies ...string) *network {
	t.Helper()
	srv := natstest.New(t)
	n := &network{t: t, nats: srv, natsURL: srv.ClientURL(), urls: map[string]string{}, svcs: map[string]*running{}}
	for _, a := range agencies {
		n.urls[a] = newDB(t)
		n.start(a, nil)
	}
	return n
}

func testLogger(t *testing.T) *slog.Logger {
	if testing.Verbose() {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelInfo}))
	}
	return slog.New(slog.DiscardHandler)
}

// start runs agency a; tune, if set, changes its config first.
func (n *network) start(a string, tune func(*agency.Config)) *running {
	n.t.Helper()
	cfg := agency.Config{Agency: a, DatabaseURL: n.urls[a], NATSURL: n.natsURL, Consumer: fastConsumer}
	cfg.Relay.ReceiptTimeout = 10 * time.Second
	cfg.NetworkKey = []byte("test network key, 32 bytes or more, shared by all")
	if tune != nil {
		tune(&cfg)
	}
	ctx, cancel := context.WithCancel(context.Background())
	svc, err := agency.New(ctx, cfg, testLogger(n.t).With("test", n.t.Name()))
	if err != nil {
		cancel()
		n.t.Fatalf("start %s: %v", a, err)
	}
	r := &running{svc: svc, http: httptest.NewServer(svc.Handler()), cancel: cancel, done: make(chan error, 1)}
	go func() { r.done <- svc.Run(ctx) }()
	n.mu.Lock()
	n.svcs[a] = r
	n.mu.Unlock()
	n.t.Cleanup(func() { r.stop() })
	return r
}

// stop cancels the service and waits for it; safe to call twice.
func (r *running) stop() error {
	r.cancel()
	err, ok := <-r.done
	if ok {
		close(r.done)
		r.http.Close()
		r.svc.Close()
	}
	return err
}

func (n *network) svc(a string) *running {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.svcs[a]
}

// do sends an HTTP request to agency a and returns the status and body.
func (n *network) do(a, method, path, body string) (int, string, http.Header) {
	n.t.Helper()
	req, err := http.NewRequest(method, n.svc(a).http.URL+path, strings.NewReader(body))
	if err != nil {
		n.t.Fatal(err)
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		n.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	return res.StatusCode, string(b), res.Header
}

// eventually and consistently wait on a condition (package poll).
var (
	eventually   = poll.Until
	consistently = poll.Always
)

// referralStatus reads a referral as agency a sees it.
func (n *network) referralStatus(a string, id string) (agency.Referral, error) {
	r, err := n.svc(a).svc.Referral(context.Background(), mustUUID(n.t, id))
	return r, err
}

func wantStatus(n *network, a, id, status string) func() error {
	return func() error {
		r, err := n.referralStatus(a, id)
		if err != nil {
			return err
		}
		if r.Status != status {
			return fmt.Errorf("%s sees referral %s as %q, want %q", a, id, r.Status, status)
		}
		return nil
	}
}

func newDB(t *testing.T) string { return pgtest.New(t, "agency", migrations.Up) }

// consent records at agency from the family's consent to share every
// category of data with agency to for a day, and returns its id.
func (n *network) consent(from, to string) uuid.UUID {
	n.t.Helper()
	c, err := n.svc(from).svc.RecordConsent(context.Background(), agency.NewConsent{
		GivenBy: "mother (legal representative)", ToAgency: to, Purpose: "help for the family",
		DataCategories: agency.Categories, ExpiresAt: time.Now().Add(24 * time.Hour),
	})
	if err != nil {
		n.t.Fatalf("%s records consent for %s: %v", from, to, err)
	}
	return c.ID
}

// consented adds to a JSON referral body from agency from the consent to
// share with the agency it names.
func (n *network) consented(from, body string) string {
	n.t.Helper()
	var b struct {
		ToAgency string `json:"to_agency"`
	}
	if err := json.Unmarshal([]byte(body), &b); err != nil {
		n.t.Fatalf("referral body %s: %v", body, err)
	}
	return strings.TrimSuffix(body, "}") + fmt.Sprintf(`,"consent_id":%q}`, n.consent(from, b.ToAgency))
}

// offered is a service each agency offers in the default directory and
// accepts without a placement.
var offered = map[string]string{
	"health": "child_health_check", "education": "early_intervention_assessment", "social": "family_support", "ngo": "legal_help",
}

// placement is the body of a shelter's accept: a bed for three months.
func placement(bed string) string {
	return fmt.Sprintf(`{"work":{"placement":{"bed":%q,"address":%q,"ends_on":%q}}}`, bed, shelterAddress, time.Now().UTC().AddDate(0, 3, 0).Format(time.DateOnly))
}

// shelterAddress is the confidential address of the test shelter.
const shelterAddress = "Almaty, Zhetysu district, 14 Konaev street, flat 7"

// storeText is every row of every table of agency a's store, as text
// (bytea columns in hex).
func (n *network) storeText(a string) string {
	n.t.Helper()
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, n.urls[a])
	if err != nil {
		n.t.Fatal(err)
	}
	defer conn.Close(ctx)
	rows, err := conn.Query(ctx, `SELECT table_name FROM information_schema.tables WHERE table_schema = 'public' AND table_type = 'BASE TABLE'`)
	if err != nil {
		n.t.Fatal(err)
	}
	tables, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		n.t.Fatal(err)
	}
	var sb strings.Builder
	for _, table := range tables {
		var text *string
		if err := conn.QueryRow(ctx, `SELECT string_agg(t::text, E'\n') FROM `+pgx.Identifier{table}.Sanitize()+` t`).Scan(&text); err != nil {
			n.t.Fatal(err)
		}
		if text != nil {
			sb.WriteString(*text)
		}
	}
	return sb.String()
}

func hexOf(s string) string { return hex.EncodeToString([]byte(s)) }

// eventsTo reports whether any event on the stream addressed to agency a
// (any agency, if a is "") contains s.
func (n *network) eventsTo(a, s string) bool {
	n.t.Helper()
	ctx := context.Background()
	st, err := n.jetstream().Stream(ctx, bus.Stream)
	if err != nil {
		n.t.Fatal(err)
	}
	info, err := st.Info(ctx)
	if err != nil {
		n.t.Fatal(err)
	}
	for seq := info.State.FirstSeq; seq <= info.State.LastSeq; seq++ {
		m, err := st.GetMsg(ctx, seq)
		if err != nil {
			n.t.Fatalf("read stream message %d: %v", seq, err)
		}
		if _, to, _ := bus.ParseSubject(m.Subject); (to == a || a == "") && strings.Contains(string(m.Data), s) {
			return true
		}
	}
	return false
}
