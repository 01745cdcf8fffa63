package main

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/refbus/refbus/pkg/bus"
	"github.com/refbus/refbus/pkg/event"
	"github.com/refbus/refbus/pkg/natstest"
	"github.com/refbus/refbus/pkg/pgtest"
	"github.com/refbus/refbus/pkg/poll"
	"github.com/refbus/refbus/pkg/referral"
	"github.com/refbus/refbus/services/internal/agency"
	"github.com/refbus/refbus/sql/agency/migrations"
)

// network is real agency services on one embedded NATS server, each with
// its own database, as in the agency service's own tests.
type network struct {
	t     *testing.T
	nats  *natstest.Server
	dbs   map[string]string
	svcs  map[string]*agency.Service
	stops []func()
	// seeds are the agencies' signing seeds, trust their public keys,
	// also written to trustFile for refbus-audit verify --trust.
	seeds     map[string][]byte
	trust     event.Trust
	trustFile string
}

// stop stops every service; safe to call twice.
func (n *network) stop() {
	for _, stop := range n.stops {
		stop()
	}
}

// newNetwork starts the agencies, each signing with its own key and
// trusting the keys of all four.
func newNetwork(t *testing.T, agencies ...string) *network {
	return newNetworkWith(t, nil, agencies...)
}

// newNetworkWith is newNetwork with each agency's config changed by
// configure, if not nil.
func newNetworkWith(t *testing.T, configure func(a string, c *agency.Config), agencies ...string) *network {
	t.Helper()
	n := &network{t: t, nats: natstest.New(t), dbs: map[string]string{}, svcs: map[string]*agency.Service{}}
	n.seeds, n.trust = testKeys(t)
	n.trustFile = writeTrust(t, n.trust)
	for _, a := range agencies {
		n.dbs[a] = pgtest.New(t, "agency", migrations.Up)
		cfg := agency.Config{
			Agency: a, DatabaseURL: n.dbs[a], NATSURL: n.nats.ClientURL(),
			Consumer:    bus.ConsumerConfig{AckWait: time.Second, BackOff: []time.Duration{500 * time.Millisecond}, MaxDeliver: 50},
			NetworkKey:  []byte("test network key, 32 bytes or more, shared by all"),
			SigningSeed: n.seeds[a], Trust: n.trust,
		}
		if configure != nil {
			configure(a, &cfg)
		}
		ctx, cancel := context.WithCancel(context.Background())
		svc, err := agency.New(ctx, cfg, slog.New(slog.DiscardHandler))
		if err != nil {
			cancel()
			t.Fatalf("start %s: %v", a, err)
		}
		done := make(chan error, 1)
		go func() { done <- svc.Run(ctx) }()
		var once sync.Once
		stop := func() {
			once.Do(func() {
				cancel()
				<-done
				svc.Close()
			})
		}
		t.Cleanup(stop)
		n.stops = append(n.stops, stop)
		n.svcs[a] = svc
	}
	return n
}

// eventually waits on a condition (package poll).
var eventually = poll.Until

// status waits until agency a sees referral id in status.
func (n *network) status(a string, id uuid.UUID, status string) {
	n.t.Helper()
	eventually(n.t, 10*time.Second, func() error {
		r, err := n.svcs[a].Referral(context.Background(), id)
		if err != nil {
			return err
		}
		if r.Status != status {
			return fmt.Errorf("%s sees referral %s as %s, want %s", a, id, r.Status, status)
		}
		return nil
	})
}

func (n *network) move(a string, id uuid.UUID, mv referral.Move, in agency.MoveInput) agency.Referral {
	n.t.Helper()
	r, err := n.svcs[a].Move(context.Background(), id, mv, in)
	if err != nil {
		n.t.Fatalf("%s %s %s: %v", a, mv, id, err)
	}
	return r
}

// The stream the real agencies write verifies clean, their stores reconcile
// with it, and a referral deleted from its receiver's store is found.
func TestAgenciesVerifyAndReconcile(t *testing.T) {
	t.Parallel()
	n := newNetwork(t, "health", "education", "social")
	ctx := context.Background()

	// Health refers a child to education, which accepts and forwards the
	// family to social; health refers to social too, which declines.
	consent := func(from, to string) uuid.UUID { return n.consent(t, from, to) }
	r1, err := n.svcs["health"].CreateReferral(ctx, agency.NewReferral{ToAgency: "education", Service: "early_intervention_assessment", Note: "speech delay", ConsentID: consent("health", "education")})
	if err != nil {
		t.Fatal(err)
	}
	n.status("health", r1.ID, "received")
	n.move("education", r1.ID, referral.Accept, agency.MoveInput{})
	fwd := n.move("education", r1.ID, referral.Forward, agency.MoveInput{ToAgency: "social", Service: "disability_support", Reason: "needs benefits", ConsentID: consent("education", "social")})
	r3, err := n.svcs["health"].CreateReferral(ctx, agency.NewReferral{ToAgency: "social", Service: "housing", Note: "risk of eviction", CaseID: r1.CaseID, ConsentID: consent("health", "social")})
	if err != nil {
		t.Fatal(err)
	}
	n.status("social", r3.ID, "received")
	n.move("social", r3.ID, referral.Decline, agency.MoveInput{ReasonCode: "not_eligible", Reason: "income above the threshold"})
	n.status("health", r1.ID, "forwarded")
	n.status("health", r3.ID, "declined")

	args := []string{"--nats", n.nats.ClientURL(), "reconcile"}
	for _, a := range []string{"health", "education", "social"} {
		args = append(args, "--db", a+"="+n.dbs[a])
	}
	// Receipts of the last moves may still be on their way.
	var out string
	eventually(t, 15*time.Second, func() error {
		var code int
		if code, out, _ = runAudit(t, args...); code != exitOK {
			return fmt.Errorf("reconcile: exit %d\n%s", code, out)
		}
		return nil
	})
	t.Logf("reconcile:\n%s", out)
	if !strings.Contains(out, "reconciled 3 referral requests") || !strings.Contains(out, "no problems") {
		t.Errorf("reconcile output:\n%s", out)
	}

	code, out, errOut := runAudit(t, "--nats", n.nats.ClientURL(), "verify", "--trust", n.trustFile)
	if code != exitOK {
		t.Fatalf("verify of the agencies' stream: exit %d\n%s%s", code, out, errOut)
	}
	t.Logf("verify:\n%s", out)
	if !strings.Contains(out, "referrals: 3 requested; now 1 declined, 1 forwarded, 1 received") || !strings.Contains(out, "signatures: checked against 4 trust anchors") {
		t.Errorf("verify output:\n%s", out)
	}
	// Filters that show one end of the forward only are no problem.
	for _, filter := range [][]string{{"--agency", "social"}, {"--agency", "health"}, {"--referral", r1.ID.String()}, {"--referral", fwd.ForwardedTo.String()}, {"--case", r1.CaseID.String()}} {
		if code, out, _ := runAudit(t, append([]string{"--nats", n.nats.ClientURL(), "verify", "--trust", n.trustFile}, filter...)...); code != exitOK {
			t.Errorf("verify %v: exit %d\n%s", filter, code, out)
		}
	}
	if fwd.Status != "forwarded" {
		t.Errorf("forward: status %s", fwd.Status)
	}

	// Delete health's referral from education's inbox, as a careless
	// operator or a restore from an old backup would.
	conn, err := pgx.Connect(ctx, n.dbs["education"])
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	tag, err := conn.Exec(ctx, "DELETE FROM inbox WHERE source = '/agencies/health' AND event_type = 'org.refbus.referral.requested.v1'")
	if err != nil || tag.RowsAffected() != 1 {
		t.Fatalf("delete inbox row: %v, %d rows", err, tag.RowsAffected())
	}
	code, out, errOut = runAudit(t, args...)
	if code != exitProblems {
		t.Fatalf("reconcile after the delete: exit %d\n%s%s", code, out, errOut)
	}
	t.Logf("reconcile after the delete:\n%s", out)
	want := "missing from inbox: referral " + r1.ID.String() + " (event "
	if !strings.HasPrefix(out, want) || !strings.Contains(out, "education's inbox has no record of it, though health holds education's receipt (applied)") {
		t.Errorf("reconcile output:\n%s\nwant a line starting %q", out, want)
	}
	if !strings.Contains(out, "1 problem\n") {
		t.Errorf("reconcile summary:\n%s", out)
	}

	// With the services stopped, so that nothing heals: health loses the
	// receipt of r1 and records r3 at a wrong stream sequence, and education
	// loses its record of the request it forwarded to social.
	n.stop()
	exec := func(db, sql string, args ...any) {
		t.Helper()
		c, err := pgx.Connect(ctx, n.dbs[db])
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close(ctx)
		if tag, err := c.Exec(ctx, sql, args...); err != nil || tag.RowsAffected() != 1 {
			t.Fatalf("%s: %v, %d rows", sql, err, tag.RowsAffected())
		}
	}
	exec("health", "UPDATE outbox SET receipted_at = NULL, receipt_outcome = NULL WHERE event_type = $1 AND subject LIKE 'refbus.health.education.%'", reconcileRequested)
	exec("health", "UPDATE outbox_published p SET stream_seq = 2 FROM outbox o WHERE o.seq = p.seq AND o.event_type = $1 AND o.subject LIKE 'refbus.health.social.%'", reconcileRequested)
	exec("education", "DELETE FROM outbox WHERE event_type = $1", reconcileRequested)
	code, out, errOut = runAudit(t, append(args, "--stuck-after", "1ms")...)
	t.Logf("reconcile after the damage:\n%s", out)
	if code != exitProblems {
		t.Fatalf("reconcile after the damage: exit %d\n%s%s", code, out, errOut)
	}
	for _, want := range []string{
		"stuck: referral " + r1.ID.String(),
		"missing from inbox: referral " + r1.ID.String(),
		"not in outbox: referral " + fwd.ForwardedTo.String(),
		"seq mismatch: referral " + r3.ID.String(),
		"4 problems",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("reconcile output lacks %q", want)
		}
	}
}

const reconcileRequested = "org.refbus.referral.requested.v1"

// consent records at from a consent, for an hour, to share a summary with to.
func (n *network) consent(t *testing.T, from, to string) uuid.UUID {
	t.Helper()
	c, err := n.svcs[from].RecordConsent(context.Background(), agency.NewConsent{GivenBy: "mother", ToAgency: to, Purpose: "help",
		DataCategories: []string{agency.CategorySummary}, ExpiresAt: time.Now().Add(time.Hour)})
	if err != nil {
		t.Fatal(err)
	}
	return c.ID
}
