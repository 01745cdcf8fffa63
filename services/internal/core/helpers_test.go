package core_test

import (
	"context"
	"fmt"
	"mime"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"testing/fstest"
	"time"

	ce "github.com/cloudevents/sdk-go/v2/event"
	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/refbus/refbus/pkg/bus"
	"github.com/refbus/refbus/pkg/event"
	"github.com/refbus/refbus/pkg/pgmigrate"
	"github.com/refbus/refbus/schemas"
	"github.com/refbus/refbus/services/internal/core/app"
	"github.com/refbus/refbus/services/internal/core/directory"
	"github.com/refbus/refbus/services/internal/core/kind"
	"github.com/refbus/refbus/services/internal/core/nodetest"
)

// The services the test nodes offer. None names deadlines: the tests of
// deadlines give their own.
var (
	legalHelp      = directory.Offer{Name: "legal_help", Title: "Legal consultation", Eligibility: "families", Languages: []string{"kk", "ru"}, Area: "Almaty"}
	healthCheck    = directory.Offer{Name: "child_health_check", Title: "Child health check", Eligibility: "children", Languages: []string{"ru"}, Area: "Almaty"}
	familySupport  = directory.Offer{Name: "family_support", Title: "Family support", Eligibility: "families in crisis", Languages: []string{"kk"}, Area: "Almaty"}
	schoolTransfer = directory.Offer{Name: "school_transfer", Title: "School transfer", Eligibility: "pupils", Languages: []string{"kk", "ru"}, Area: "Almaty region"}
)

// plain is a node kind with no tables and no work records, offering
// offers: what every node does, whatever its kind, is tested on it. All
// plain nodes share one kind name, so their stores come from one template.
func plain(offers ...directory.Offer) kind.Kind { return nodetest.PlainKind("plain", offers...) }

// ledger is a plain kind that keeps a row for every referral the core
// tells it it received, in a table with no unique key. The referral row
// and the inbox row are each under a primary key, so a referral applied
// twice does not show in them; it shows here, as it would in a shelter's
// count of its beds.
type ledger struct {
	*nodetest.Plain
	// declines is a service whose referrals the kind declines at once,
	// as a full shelter does.
	declines string
}

// ledgerKind is a ledger node offering offers.
func ledgerKind(offers ...directory.Offer) ledger {
	return ledger{Plain: nodetest.PlainKind("ledger", offers...)}
}

// declining is l declining every referral for service at once.
func (l ledger) declining(service string) ledger {
	l.declines = service
	return l
}

// Migrations is the ledger's one table.
func (ledger) Migrations() pgmigrate.Line {
	return pgmigrate.Line{Schema: "ledger", FS: fstest.MapFS{"00001_received.sql": {Data: []byte(`-- +goose Up
CREATE TABLE ledger.received (referral_id uuid NOT NULL, at timestamptz NOT NULL DEFAULT clock_timestamp());
-- +goose Down
DROP TABLE ledger.received;
`)}}}
}

// Received writes the row, in the inbox's transaction, and declines the
// referral if it is for the service the kind declines.
func (ledger) Wants(kind.Referral) bool { return true }

func (l ledger) Received(ctx context.Context, db kind.DB, r kind.Referral) (*kind.Decline, error) {
	if _, err := db.Exec(ctx, `INSERT INTO ledger.received (referral_id) VALUES ($1)`, r.ID); err != nil {
		return nil, err
	}
	if r.Service == l.declines {
		return &kind.Decline{ReasonCode: "no_capacity", Reason: "no free place in " + r.Service}, nil
	}
	return nil, nil
}

// heard counts, by referral, how often ledger node name was told it
// received it.
func heard(t *testing.T, n *nodetest.Network, name string) map[uuid.UUID]int {
	t.Helper()
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, n.DB(name))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	rows, err := conn.Query(ctx, `SELECT referral_id, count(*) FROM ledger.received GROUP BY 1`)
	if err != nil {
		t.Fatal(err)
	}
	out := map[uuid.UUID]int{}
	for rows.Next() {
		var id uuid.UUID
		var k int
		if err := rows.Scan(&id, &k); err != nil {
			t.Fatal(err)
		}
		out[id] = k
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

// receivedOnce checks the effect of the referrals ids, sent from node
// from to ledger node to, once both nodes' consumers are idle: each is
// received at its sender; the receiver's kind was told of it once; it is
// in the receiver's inbox listing once, in status; and the receiver holds
// no referral from from beyond ids.
func receivedOnce(t *testing.T, n *nodetest.Network, from, to string, ids []uuid.UUID, status string) {
	t.Helper()
	nodetest.Eventually(t, 60*time.Second, allStatus(n, from, ids, status))
	nodetest.Eventually(t, 30*time.Second, n.ConsumerIdle(to))
	nodetest.Eventually(t, 30*time.Second, n.ConsumerIdle(from))
	want := map[uuid.UUID]bool{}
	for _, id := range ids {
		want[id] = true
	}
	h := heard(t, n, to)
	for _, id := range ids {
		if h[id] != 1 {
			t.Errorf("%s's kind was told %d times that it received referral %s, want once", to, h[id], id)
		}
	}
	in, err := n.App(to).Inbox(context.Background(), "", 100000)
	if err != nil {
		t.Fatal(err)
	}
	listed := map[uuid.UUID]int{}
	for _, r := range in {
		if r.FromAgency != from {
			continue
		}
		listed[r.ID]++
		if !want[r.ID] {
			t.Errorf("%s's inbox lists a referral %s from %s that was never sent", to, r.ID, from)
		}
		if r.Status != status {
			t.Errorf("%s's inbox lists referral %s as %q, want %q", to, r.ID, r.Status, status)
		}
	}
	for _, id := range ids {
		if listed[id] != 1 {
			t.Errorf("%s's inbox lists referral %s %d times, want once", to, id, listed[id])
		}
	}
}

// steps counts the steps of a case's timeline by referral and move.
func steps(c app.Case) map[uuid.UUID]map[string]int {
	out := map[uuid.UUID]map[string]int{}
	for _, s := range c.Timeline {
		if out[s.ReferralID] == nil {
			out[s.ReferralID] = map[string]int{}
		}
		out[s.ReferralID][s.Move]++
	}
	return out
}

// wantSteps checks that node name's timeline of referral r has each of
// the moves named once, and no other.
func wantSteps(t *testing.T, n *nodetest.Network, name string, r app.Referral, names ...string) {
	t.Helper()
	got := steps(n.Case(name, r.CaseID))[r.ID]
	want := map[string]int{}
	for _, m := range names {
		want[m]++
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("%s's timeline of referral %s has the steps %v, want %v", name, r.ID, got, want)
	}
}

// allStatus holds once node name sees every referral of ids in status.
func allStatus(n *nodetest.Network, name string, ids []uuid.UUID, status string) func() error {
	return func() error {
		for _, id := range ids {
			if err := n.WantStatus(name, id, status)(); err != nil {
				return err
			}
		}
		return nil
	}
}

// sendMany makes k referrals from node from to node to for service, under
// one consent, and returns their ids.
func sendMany(t *testing.T, n *nodetest.Network, from, to, service string, k int) []uuid.UUID {
	t.Helper()
	ids := make([]uuid.UUID, k)
	consent := n.Consent(from, to)
	for i := range ids {
		r, err := n.App(from).CreateReferral(context.Background(), app.NewReferral{ToOrg: to, ConsentID: consent, Service: service, Note: fmt.Sprint(i)})
		if err != nil {
			t.Fatal(err)
		}
		ids[i] = r.ID
	}
	return ids
}

// create makes one referral through the application, under a consent of
// its own.
func create(t *testing.T, n *nodetest.Network, from, to, service string) app.Referral {
	t.Helper()
	r, err := n.App(from).CreateReferral(context.Background(), app.NewReferral{ToOrg: to, ConsentID: n.Consent(from, to), Service: service, Note: "n"})
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// requestedEvent builds a referral request as node from would send it to
// node to, with a consent to share its summary for an hour unless data
// names one.
func requestedEvent(t *testing.T, n *nodetest.Network, from string, data map[string]any) *ce.Event {
	t.Helper()
	if _, ok := data["consent"]; !ok {
		data["consent"] = map[string]any{"id": uuid.NewString(), "purpose": "help", "data_categories": []string{schemas.CategorySummary},
			"expires_at": time.Now().Add(time.Hour).UTC().Format(time.RFC3339)}
	}
	ev, err := registry(t).New(bus.Source(from), schemas.TypeRequested, uuid.Must(uuid.NewV7()).String(), data)
	if err != nil {
		t.Fatal(err)
	}
	ev.SetExtension(event.ExtCaseID, uuid.Must(uuid.NewV7()).String())
	event.SetSequence(ev, 1)
	// Sealed as a sender seals it: under a new data key wrapped to the
	// node it is for.
	to, _ := data["to_agency"].(string)
	id := uuid.MustParse(ev.Subject())
	key, wrapped, err := n.App(to).NewDataKey(context.Background(), to, id)
	if err != nil {
		t.Fatal(err)
	}
	if err := registry(t).Seal(ev, key, wrapped); err != nil {
		t.Fatal(err)
	}
	return ev
}

func registry(t *testing.T) *event.Registry {
	t.Helper()
	reg, err := schemas.Registry()
	if err != nil {
		t.Fatal(err)
	}
	return reg
}

// publish puts an event on the stream from node from to node to, as that
// node's relay would.
func publish(t *testing.T, js jetstream.JetStream, from, to string, e *ce.Event) *jetstream.PubAck {
	t.Helper()
	msg, err := event.NewMsg(bus.Subject(from, to, e.Type()), e)
	if err != nil {
		t.Fatal(err)
	}
	ack, err := js.PublishMsg(context.Background(), msg)
	if err != nil {
		t.Fatal(err)
	}
	return ack
}

// consumerInfo reads node name's consumer.
func consumerInfo(t *testing.T, js jetstream.JetStream, name string) *jetstream.ConsumerInfo {
	t.Helper()
	c, err := js.Consumer(context.Background(), bus.Stream, name)
	if err != nil {
		t.Fatal(err)
	}
	info, err := c.Info(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return info
}

// streamCount is how many messages the stream holds on subject.
func streamCount(t *testing.T, js jetstream.JetStream, subject string) uint64 {
	t.Helper()
	s, err := js.Stream(context.Background(), bus.Stream)
	if err != nil {
		t.Fatal(err)
	}
	info, err := s.Info(context.Background(), jetstream.WithSubjectFilter(subject))
	if err != nil {
		t.Fatal(err)
	}
	return info.State.Subjects[subject]
}

// rejectionReasons lists node name's rejected events as "event id: reason".
func rejectionReasons(n *nodetest.Network, name string) ([]string, error) {
	rej, err := n.App(name).Rejections(context.Background(), 100)
	if err != nil {
		return nil, err
	}
	out := make([]string, len(rej))
	for i, r := range rej {
		out[i] = r.EventID + ": " + r.Reason
	}
	return out, nil
}

// clock is a test clock for consents and deadlines.
type clock struct{ offset atomic.Int64 }

func (c *clock) now() time.Time          { return time.Now().Add(time.Duration(c.offset.Load())) }
func (c *clock) advance(d time.Duration) { c.offset.Add(int64(d)) }

// problemDoc is an RFC 9457 problem as huma writes it.
type problemDoc struct {
	Type   string `json:"type"`
	Title  string `json:"title"`
	Status int    `json:"status"`
	Detail string `json:"detail"`
	Errors []struct {
		Message  string `json:"message"`
		Location string `json:"location"`
	} `json:"errors"`
}

// text is everything in the problem a person reads: the detail and each
// error with where it is.
func (p problemDoc) text() string {
	parts := []string{p.Detail}
	for _, e := range p.Errors {
		parts = append(parts, e.Location+": "+e.Message)
	}
	return strings.Join(parts, " | ")
}

// checkProblem asserts that the response is a problem document with the
// given status whose detail or errors mention each of wantText.
func checkProblem(t *testing.T, status int, body string, header http.Header, wantStatus int, wantText ...string) problemDoc {
	t.Helper()
	if status != wantStatus {
		t.Errorf("status %d, want %d; body %s", status, wantStatus, body)
	}
	ct := header.Get("Content-Type")
	if mt, _, err := mime.ParseMediaType(ct); err != nil || mt != "application/problem+json" {
		t.Errorf("Content-Type %q, want application/problem+json", ct)
	}
	p := nodetest.Decode[problemDoc](t, body)
	t.Logf("%d %s: %s", status, p.Title, p.text())
	if p.Status != status {
		t.Errorf(`problem "status" is %d, the HTTP status is %d`, p.Status, status)
	}
	if strings.TrimSpace(p.Title) == "" {
		t.Errorf(`problem has no "title": %s`, body)
	}
	if strings.TrimSpace(p.text()) == "" {
		t.Errorf(`problem has neither "detail" nor "errors" with messages: %s`, body)
	}
	for _, w := range wantText {
		if !strings.Contains(p.text(), w) {
			t.Errorf("problem does not tell the caller about %q: %q", w, p.text())
		}
	}
	return p
}

// directoryOf reads the directory as node name serves it.
func directoryOf(t *testing.T, n *nodetest.Network, name string) []directory.Listing {
	t.Helper()
	status, body, _ := n.Do(name, "GET", "/api/v1/directory", "")
	if status != 200 {
		t.Fatalf("%s's directory: %d %s", name, status, body)
	}
	return nodetest.Decode[struct {
		Nodes []directory.Listing `json:"nodes"`
	}](t, body).Nodes
}
