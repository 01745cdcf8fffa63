package main

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/refbus/refbus/pkg/bus"
	"github.com/refbus/refbus/pkg/event"
	"github.com/refbus/refbus/pkg/referral"
	"github.com/refbus/refbus/schemas"
	"github.com/refbus/refbus/services/internal/core"
	nodeapp "github.com/refbus/refbus/services/internal/core/app"
	"github.com/refbus/refbus/services/internal/core/kind"
	"github.com/refbus/refbus/services/internal/core/nodetest"
	"github.com/refbus/refbus/services/kinds"
)

// network is real nodes (nodetest) of the kinds they are named after,
// each signing with its own key and trusting all the others', with the
// trust anchors also in a file for refbus-audit verify --trust.
type network struct {
	*nodetest.Network
	nats      string
	dbs       map[string]string
	seeds     map[string][]byte
	trust     event.Trust
	trustFile string
}

// kindOf is the kind of the test node name.
func kindOf(t *testing.T, name string) kind.Kind {
	t.Helper()
	k := kinds.New(name)
	if k == nil {
		t.Fatalf("no kind for node %s", name)
	}
	return k
}

// stop stops every node; safe to call twice.
func (n *network) stop() {
	for name := range n.dbs {
		_ = n.Node(name).Stop()
	}
}

// newNetwork starts the nodes.
func newNetwork(t *testing.T, nodes ...string) *network {
	return newNetworkWith(t, nil, nodes...)
}

// newNetworkWith is newNetwork with each node's config changed by
// configure, if not nil.
func newNetworkWith(t *testing.T, configure func(node string, c *core.Config), nodes ...string) *network {
	t.Helper()
	n := &network{Network: nodetest.New(t), dbs: map[string]string{}}
	n.nats = n.NATSURL
	n.seeds, n.trust = testKeys(t)
	n.trustFile = writeTrust(t, n.trust)
	for _, name := range nodes {
		n.Start(name, kindOf(t, name), func(c *core.Config) {
			c.SigningSeed, c.Trust = n.seeds[name], n.trust
			if configure != nil {
				configure(name, c)
			}
		})
		n.dbs[name] = n.DB(name)
	}
	return n
}

// app is node name's application.
func (n *network) app(name string) *nodeapp.App { return n.App(name) }

// status waits until node name sees referral id in status.
func (n *network) status(name string, id uuid.UUID, status string) {
	n.T.Helper()
	nodetest.Eventually(n.T, 30*time.Second, n.WantStatus(name, id, status))
}

func (n *network) move(name string, id uuid.UUID, mv referral.Move, in nodeapp.MoveInput) nodeapp.Referral {
	n.T.Helper()
	r, err := n.app(name).Move(context.Background(), id, mv, in)
	if err != nil {
		n.T.Fatalf("%s %s %s: %v", name, mv, id, err)
	}
	return r
}

// The stream real nodes write verifies clean, their stores reconcile with
// it, and a referral deleted from its receiver's store is found.
func TestNodesVerifyAndReconcile(t *testing.T) {
	t.Parallel()
	n := newNetwork(t, "health", "education", "social")
	ctx := context.Background()

	// Health refers a child to education, which accepts and forwards the
	// family to social; health refers to social too, which declines.
	consent := func(from, to string) uuid.UUID { return n.consent(t, from, to) }
	r1, err := n.app("health").CreateReferral(ctx, nodeapp.NewReferral{ToOrg: "education", Service: "early_intervention_assessment", Note: "speech delay", ConsentID: consent("health", "education")})
	if err != nil {
		t.Fatal(err)
	}
	n.status("health", r1.ID, "received")
	n.move("education", r1.ID, referral.Accept, nodeapp.MoveInput{})
	fwd := n.move("education", r1.ID, referral.Forward, nodeapp.MoveInput{ToOrg: "social", Service: "disability_support", Reason: "needs benefits", ConsentID: consent("education", "social")})
	r3, err := n.app("health").CreateReferral(ctx, nodeapp.NewReferral{ToOrg: "social", Service: "housing", Note: "risk of eviction", CaseID: r1.CaseID, ConsentID: consent("health", "social")})
	if err != nil {
		t.Fatal(err)
	}
	n.status("social", r3.ID, "received")
	n.move("social", r3.ID, referral.Decline, nodeapp.MoveInput{ReasonCode: "not_eligible", Reason: "income above the threshold"})
	n.status("health", r1.ID, "forwarded")
	n.status("health", r3.ID, "declined")

	args := []string{"--nats", n.nats, "reconcile"}
	for _, node := range []string{"health", "education", "social"} {
		args = append(args, "--db", node+"="+n.dbs[node])
	}
	// Receipts of the last moves may still be on their way.
	var out string
	nodetest.Eventually(t, 15*time.Second, func() error {
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

	code, out, errOut := runAudit(t, "--nats", n.nats, "verify", "--trust", n.trustFile)
	if code != exitOK {
		t.Fatalf("verify of the agencies' stream: exit %d\n%s%s", code, out, errOut)
	}
	t.Logf("verify:\n%s", out)
	if !strings.Contains(out, "referrals: 3 requested; now 1 declined, 1 forwarded, 1 received") || !strings.Contains(out, "signatures: checked against 4 trust anchors") {
		t.Errorf("verify output:\n%s", out)
	}
	// Filters that show one end of the forward only are no problem.
	for _, filter := range [][]string{{"--agency", "social"}, {"--agency", "health"}, {"--referral", r1.ID.String()}, {"--referral", fwd.ForwardedTo.String()}, {"--case", r1.CaseID.String()}} {
		if code, out, _ := runAudit(t, append([]string{"--nats", n.nats, "verify", "--trust", n.trustFile}, filter...)...); code != exitOK {
			t.Errorf("verify %v: exit %d\n%s", filter, code, out)
		}
	}
	if fwd.Status != "forwarded" {
		t.Errorf("forward: status %s", fwd.Status)
	}

	// Delete health's referral from education's inbox, as a careless
	// operator or a restore from an old backup would: with SQL, as pkg's
	// read functions cannot.
	conn, err := pgx.Connect(ctx, n.dbs["education"])
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	tag, err := conn.Exec(ctx, "DELETE FROM bus.inbox WHERE source = $1 AND event_type = $2", bus.Source("health"), schemas.TypeRequested)
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
	exec("health", "UPDATE bus.outbox SET receipted_at = NULL, receipt_outcome = NULL WHERE event_type = $1 AND subject = $2",
		schemas.TypeRequested, bus.Subject("health", "education", schemas.TypeRequested))
	exec("health", "UPDATE bus.outbox_published p SET stream_seq = 2 FROM bus.outbox o WHERE o.seq = p.seq AND o.event_type = $1 AND o.subject = $2",
		schemas.TypeRequested, bus.Subject("health", "social", schemas.TypeRequested))
	exec("education", "DELETE FROM bus.outbox WHERE event_type = $1", schemas.TypeRequested)
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

// consent records at from a consent, for an hour, to share a summary with to.
func (n *network) consent(t *testing.T, from, to string) uuid.UUID {
	t.Helper()
	c, err := n.app(from).RecordConsent(context.Background(), nodeapp.NewConsent{GivenBy: "mother", ToOrg: to, Purpose: "help",
		DataCategories: []string{schemas.CategorySummary}, ExpiresAt: time.Now().Add(time.Hour)})
	if err != nil {
		t.Fatal(err)
	}
	return c.ID
}
