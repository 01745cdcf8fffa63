package core_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/refbus/refbus/pkg/bus"
	"github.com/refbus/refbus/pkg/event"
	"github.com/refbus/refbus/schemas"
	"github.com/refbus/refbus/services/internal/core"
	"github.com/refbus/refbus/services/internal/core/nodetest"
)

// A move that arrives before the move it follows waits; when it has waited
// through every redelivery it becomes a dead letter, and once the earlier
// move has come, re-driving applies it, once.
func TestEarlyMoveWaitsThenDeadLetterRedrives(t *testing.T) {
	t.Parallel()
	n := nodetest.New(t)
	n.Start("legal_aid", plain(legalHelp), nil)
	clinic := n.Start("clinic", plain(healthCheck), func(c *core.Config) {
		c.Consumer = bus.ConsumerConfig{BackOff: []time.Duration{100 * time.Millisecond}, MaxDeliver: 3}
	})
	ctx := context.Background()
	r := create(t, n, "clinic", "legal_aid", "legal_help")
	n.Both(r, "received")

	// legal_aid's second move, "started", reaches the clinic before its
	// first.
	started, err := registry(t).New(bus.Source("legal_aid"), schemas.TypeStarted, r.ID.String(), map[string]any{})
	if err != nil {
		t.Fatal(err)
	}
	started.SetExtension(event.ExtCaseID, r.CaseID.String())
	event.SetSequence(started, 2)
	if err := registry(t).Seal(started, dataKey(t, n, "clinic", r.ID), nil); err != nil {
		t.Fatal(err)
	}
	publish(t, n.JetStream(), "legal_aid", "clinic", started)
	nodetest.Eventually(t, 30*time.Second, func() error {
		dl, err := clinic.DeadLetters(ctx)
		if err != nil {
			return err
		}
		if len(dl) != 1 || dl[0].Deliveries != 3 || dl[0].Subject != "refbus.legal_aid.clinic.referral.started" {
			return fmt.Errorf("dead letters: %+v", dl)
		}
		return nil
	})
	if got, _ := n.Referral("clinic", r.ID); got.Status != "received" {
		t.Fatalf("the early move applied: the clinic sees %q", got.Status)
	}
	// Re-driving now changes nothing: the earlier move is still missing.
	if settled, err := clinic.Redrive(ctx); err != nil || settled != 0 {
		t.Fatalf("redrive before the earlier move: settled %d, %v", settled, err)
	}

	n.Move("legal_aid", r.ID, "accept", ``) // legal_aid's move 1
	nodetest.Eventually(t, 30*time.Second, n.WantStatus("clinic", r.ID, "accepted"))
	status, body, _ := n.Do("clinic", "POST", "/api/v1/dead-letters/redrive", "")
	if status != 200 || body != `{"$schema":"`+clinic.HTTP.URL+`/schemas/RedriveOutputBody.json","settled":1}`+"\n" {
		t.Fatalf("redrive: %d %s", status, body)
	}
	if got, _ := n.Referral("clinic", r.ID); got.Status != "in_progress" {
		t.Fatalf("after redrive the clinic sees %q, want in_progress", got.Status)
	}
	if dl, _ := clinic.DeadLetters(ctx); len(dl) != 0 {
		t.Fatalf("dead letters left: %+v", dl)
	}
	if settled, _ := clinic.Redrive(ctx); settled != 0 {
		t.Fatalf("a second redrive settled %d", settled)
	}
	// Applied once: one step for each move in the clinic's timeline.
	wantSteps(t, n, "clinic", r, "request", "receive", "accept", "start")
}
