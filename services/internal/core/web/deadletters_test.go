package web_test

import (
	"context"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/refbus/refbus/pkg/bus"
	"github.com/refbus/refbus/pkg/event"
	"github.com/refbus/refbus/pkg/poll"
	"github.com/refbus/refbus/pkg/referral"
	"github.com/refbus/refbus/schemas"
	"github.com/refbus/refbus/services/internal/core"
	"github.com/refbus/refbus/services/internal/core/app"
)

// TestDeadLettersFromUI: a move that came before the move it follows
// waits through every redelivery and becomes a dead letter; the dead
// letters page shows it with its reason, auditors read it without the
// form, caseworkers do not see it; once the earlier move has come, the
// supervisor's re-drive from the form applies it.
func TestDeadLettersFromUI(t *testing.T) {
	t.Parallel()
	n := newNetworkWith(t, nil, func(c *core.Config) {
		if c.Node == "health" {
			c.Consumer = bus.ConsumerConfig{BackOff: []time.Duration{100 * time.Millisecond}, MaxDeliver: 3}
		}
	}, "health", "ngo")
	ctx := context.Background()
	r := n.refer("health", "ngo", "legal_help", "The mother needs a lawyer for the custody case.")
	n.Both(r, "received")

	// The ngo's second move, "started", reaches health before its first.
	reg, err := schemas.Registry()
	if err != nil {
		t.Fatal(err)
	}
	started, err := reg.New(bus.Source("ngo"), schemas.TypeStarted, r.ID.String(), map[string]any{})
	if err != nil {
		t.Fatal(err)
	}
	started.SetExtension(event.ExtCaseID, r.CaseID.String())
	event.SetSequence(started, 2)
	conn, err := pgx.Connect(ctx, n.DB("health"))
	if err != nil {
		t.Fatal(err)
	}
	var key []byte
	err = conn.QueryRow(ctx, "SELECT data_key FROM core.referral WHERE id = $1", r.ID).Scan(&key)
	conn.Close(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := reg.Seal(started, key, nil); err != nil {
		t.Fatal(err)
	}
	msg, err := event.NewMsg(bus.Subject("ngo", "health", started.Type()), started)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := n.JetStream().PublishMsg(ctx, msg); err != nil {
		t.Fatal(err)
	}

	sup := n.signIn("health", "health-supervisor")
	const subject = "refbus.ngo.health.referral.started"
	poll.Until(t, 30*time.Second, func() error {
		res, body := sup.get("/ui/dead-letters")
		if res.StatusCode != http.StatusOK || !strings.Contains(body, subject) {
			return errorf("the dead letters page lacks the dead letter: %s", res.Status)
		}
		return nil
	})
	res, body := sup.get("/ui/dead-letters")
	wantContains(t, body, `<td>3</td>`, `action="/ui/dead-letters/redrive"`)

	aud := n.signIn("health", "health-auditor")
	res, body = aud.get("/ui/dead-letters")
	wantStatus(t, res, http.StatusOK)
	wantContains(t, body, subject)
	if strings.Contains(body, `action="/ui/dead-letters/redrive"`) {
		t.Fatal("the auditor is offered the re-drive form")
	}
	res, _ = aud.form("/ui/dead-letters/redrive", nil)
	wantStatus(t, res, http.StatusForbidden)
	cw := n.signIn("health", "health-caseworker")
	res, _ = cw.get("/ui/dead-letters")
	wantStatus(t, res, http.StatusForbidden)
	res, _ = cw.form("/ui/dead-letters/redrive", nil)
	wantStatus(t, res, http.StatusForbidden)

	if _, err := n.App("ngo").Move(ctx, r.ID, referral.Accept, app.MoveInput{}); err != nil { // the ngo's move 1
		t.Fatal(err)
	}
	poll.Until(t, 30*time.Second, n.WantStatus("health", r.ID, "accepted"))
	res, _ = sup.form("/ui/dead-letters/redrive", nil)
	wantStatus(t, res, http.StatusSeeOther)
	if loc := res.Header.Get("Location"); loc != "/ui/dead-letters?settled=1" {
		t.Fatalf("re-drive redirects to %q", loc)
	}
	if got, _ := n.Referral("health", r.ID); got.Status != "in_progress" {
		t.Fatalf("after the re-drive health sees %q, want in_progress", got.Status)
	}
	res, body = sup.get("/ui/dead-letters?settled=1")
	wantStatus(t, res, http.StatusOK)
	wantContains(t, body, `id="settled"`, `id="none"`)
}
