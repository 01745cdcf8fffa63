package agency_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/refbus/refbus/pkg/bus"
	"github.com/refbus/refbus/pkg/event"
	"github.com/refbus/refbus/schemas"
	"github.com/refbus/refbus/services/internal/agency"
)

// A move that arrives before the move it follows waits; when it has waited
// through every redelivery it becomes a dead letter, and once the earlier
// move has come, re-driving applies it, once.
func TestEarlyMoveWaitsThenDeadLetterRedrives(t *testing.T) {
	t.Parallel()
	n := newNetwork(t, "ngo")
	n.urls["health"] = n.newDB()
	n.start("health", func(c *agency.Config) {
		c.Consumer = bus.ConsumerConfig{BackOff: []time.Duration{100 * time.Millisecond}, MaxDeliver: 3}
	})
	ctx := context.Background()
	r, err := n.svc("health").svc.CreateReferral(ctx, agency.NewReferral{ToAgency: "ngo", ConsentID: n.consent("health", "ngo"), Service: "legal_help", Note: "n"})
	if err != nil {
		t.Fatal(err)
	}
	n.both(r, "received")

	// ngo's second move, "started", reaches health before its first.
	reg, err := schemas.Registry()
	if err != nil {
		t.Fatal(err)
	}
	started, err := reg.New(bus.Source("ngo"), "org.refbus.referral.started.v1", r.ID.String(), map[string]any{})
	if err != nil {
		t.Fatal(err)
	}
	started.SetExtension(event.ExtCaseID, r.CaseID.String())
	event.SetSequence(started, 2)
	msg, err := event.NewMsg(bus.Subject("ngo", "health", started.Type()), started)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := n.jetstream().PublishMsg(ctx, msg); err != nil {
		t.Fatal(err)
	}
	eventually(t, 30*time.Second, func() error {
		dl, err := n.svc("health").svc.DeadLetters(ctx)
		if err != nil {
			return err
		}
		if len(dl) != 1 || dl[0].Deliveries != 3 || dl[0].Subject != "refbus.ngo.health.referral.started" {
			return fmt.Errorf("dead letters: %+v", dl)
		}
		return nil
	})
	if got, _ := n.referralStatus("health", r.ID.String()); got.Status != "received" {
		t.Fatalf("the early move applied: health sees %q", got.Status)
	}
	// Re-driving now changes nothing: the earlier move is still missing.
	if settled, err := n.svc("health").svc.Redrive(ctx); err != nil || settled != 0 {
		t.Fatalf("redrive before the earlier move: settled %d, %v", settled, err)
	}

	n.move("ngo", r.ID, "accept", ``) // ngo's move 1
	eventually(t, 10*time.Second, wantStatus(n, "health", r.ID.String(), "accepted"))
	status, body, _ := n.do("health", "POST", "/api/v1/dead-letters/redrive", "")
	if status != 200 || body != `{"$schema":"`+n.svc("health").http.URL+`/schemas/RedriveOutputBody.json","settled":1}`+"\n" {
		t.Fatalf("redrive: %d %s", status, body)
	}
	if got, _ := n.referralStatus("health", r.ID.String()); got.Status != "in_progress" {
		t.Fatalf("after redrive health sees %q, want in_progress", got.Status)
	}
	if dl, _ := n.svc("health").svc.DeadLetters(ctx); len(dl) != 0 {
		t.Fatalf("dead letters left: %+v", dl)
	}
	if settled, _ := n.svc("health").svc.Redrive(ctx); settled != 0 {
		t.Fatalf("a second redrive settled %d", settled)
	}
}
