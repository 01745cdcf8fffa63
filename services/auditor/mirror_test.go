package main

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/refbus/refbus/pkg/bus"
	"github.com/refbus/refbus/services/internal/core/nodetest"
)

// The audit mirror holds the stream's messages at the same sequences, so
// replay and verify read it as they read REFERRALS; and no one can delete
// from it or purge it.
func TestAuditMirror(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	for _, m := range f.signAll(f.story()) {
		f.publish(m)
	}
	mirror, err := bus.EnsureAuditStream(t.Context(), f.js, bus.StreamConfig{})
	if err != nil {
		t.Fatal(err)
	}
	nodetest.Eventually(t, 10*time.Second, func() error {
		info, err := mirror.Info(t.Context())
		if err != nil {
			return err
		}
		if info.State.Msgs != 14 {
			return fmt.Errorf("mirror holds %d messages, want 14", info.State.Msgs)
		}
		return nil
	})
	// Ensuring it again changes nothing.
	if _, err := bus.EnsureAuditStream(t.Context(), f.js, bus.StreamConfig{}); err != nil {
		t.Fatalf("ensure the mirror again: %v", err)
	}

	_, want, _ := f.audit("replay", "--format", "jsonl")
	code, got, errOut := f.audit("--mirror", "replay", "--format", "jsonl")
	if code != exitOK || got != want || strings.Count(got, "\n") != 14 {
		t.Fatalf("replay --mirror: exit %d\n%s%s\nwant\n%s", code, got, errOut, want)
	}
	_, want, _ = f.audit("replay", "--from-seq", "5", "--to-seq", "9")
	if _, got, _ := f.audit("--mirror", "replay", "--from-seq", "5", "--to-seq", "9"); got != want {
		t.Fatalf("replay --mirror of seq 5 to 9:\n%s\nwant\n%s", got, want)
	}
	code, out, errOut := f.audit("--mirror", "verify", "--trust", f.trustFile)
	if code != exitOK || !strings.Contains(out, "verified 14 events, seq 1 to 14: no problems") {
		t.Fatalf("verify --mirror: exit %d\n%s%s", code, out, errOut)
	}

	if err := mirror.DeleteMsg(t.Context(), 3); err == nil {
		t.Error("deleted a message from the audit mirror")
	}
	if err := mirror.Purge(t.Context()); err == nil {
		t.Error("purged the audit mirror")
	}
	if info, err := mirror.Info(t.Context()); err != nil || info.State.Msgs != 14 {
		t.Errorf("mirror after the attempts: %v, %v", info, err)
	}
}

// Without a mirror, --mirror says so.
func TestAuditMirrorMissing(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	f.publishAll(f.story()[:1])
	code, _, errOut := f.audit("--mirror", "replay")
	if code != exitError || !strings.Contains(errOut, "no "+bus.AuditStream+" stream") {
		t.Fatalf("replay --mirror without one: exit %d %s", code, errOut)
	}
}
