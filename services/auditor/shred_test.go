package main

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	ce "github.com/cloudevents/sdk-go/v2/event"
	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/refbus/refbus/pkg/bus"
	"github.com/refbus/refbus/pkg/event"
	"github.com/refbus/refbus/pkg/referral"
	"github.com/refbus/refbus/schemas"
	nodeapp "github.com/refbus/refbus/services/internal/core/app"
	"github.com/refbus/refbus/services/internal/core/nodetest"
)

// Once a family revokes its consent, the referral's data key is
// destroyed at both its nodes, and each node destroys its sealing key of
// the day once it is retired and used up: from then on no node opens the
// referral's events with any key that remains, while the stream stays
// complete and verify passes, reporting them as sealed, key destroyed.
// A referral under another consent still opens with the key its nodes
// keep (the check can succeed).
func TestRevokedReferralUnreadableButVerifiable(t *testing.T) {
	t.Parallel()
	n := newNetwork(t, "health", "social")
	ctx := context.Background()
	reg, err := schemas.Registry()
	if err != nil {
		t.Fatal(err)
	}
	const note = "The mother says her partner hits the children"
	revoked := n.consent(t, "health", "social")
	r, err := n.app("health").CreateReferral(ctx, nodeapp.NewReferral{ToOrg: "social", Service: "housing", Note: note, ConsentID: revoked})
	if err != nil {
		t.Fatal(err)
	}
	kept, err := n.app("health").CreateReferral(ctx, nodeapp.NewReferral{ToOrg: "social", Service: "housing", Note: "risk of eviction", CaseID: r.CaseID, ConsentID: n.consent(t, "health", "social")})
	if err != nil {
		t.Fatal(err)
	}
	n.status("social", r.ID, "received")
	n.status("social", kept.ID, "received")
	n.move("social", r.ID, referral.Accept, nodeapp.MoveInput{Note: "we will call the mother today"})
	n.status("health", r.ID, "accepted")
	if _, err := n.app("health").RevokeConsent(ctx, revoked, "the mother withdrew it"); err != nil {
		t.Fatal(err)
	}
	n.status("social", r.ID, "cancelled")
	nodetest.Eventually(t, 30*time.Second, func() error {
		if got, _ := n.Referral("social", r.ID); got.Note != "" {
			return fmt.Errorf("social still holds the note %q", got.Note)
		}
		return nil
	})
	// Each node starts a new key of the day; the old ones go once used up.
	for _, name := range []string{"health", "social"} {
		if err := n.app(name).RotateSealingKey(ctx); err != nil {
			t.Fatal(err)
		}
		nodetest.Eventually(t, 30*time.Second, func() error {
			if k, err := n.app(name).DestroyRetiredKeys(ctx, 0); err != nil || k == 0 {
				return fmt.Errorf("%s destroyed %d retired keys: %v", name, k, err)
			}
			return nil
		})
	}

	opens := func(e *ce.Event) []string {
		var with []string
		for _, name := range []string{"health", "social"} {
			for _, key := range dataKeys(t, n.dbs[name]) {
				c := e.Clone()
				if reg.Open(&c, key) == nil {
					with = append(with, name+"'s data key")
				}
			}
			if w, _ := reg.WrappedKey(e); w != nil {
				if _, err := n.app(name).UnwrapKey(ctx, uuid.MustParse(e.Subject()), w); err == nil {
					with = append(with, name+"'s sealing key")
				}
			}
		}
		return with
	}
	gone := referralEvents(t, n, r.ID)
	if len(gone) != 3 {
		t.Fatalf("%d events of the revoked referral on the stream, want 3 (requested, accepted, cancelled)", len(gone))
	}
	for _, e := range gone {
		if !reg.IsSealed(e) {
			t.Fatalf("%s is not sealed", e.Type())
		}
		if with := opens(e); len(with) > 0 {
			t.Errorf("the revoked referral's %s still opens with %s", e.Type(), strings.Join(with, ", "))
		}
	}
	for _, e := range referralEvents(t, n, kept.ID) {
		if with := opens(e); len(with) != 2 || !strings.Contains(with[0], "data key") || !strings.Contains(with[1], "data key") {
			t.Errorf("the other referral's %s opens with %v, want both nodes' data keys only", e.Type(), with)
		}
	}

	code, out, errOut := runAudit(t, "--nats", n.nats, "verify", "--trust", n.trustFile)
	if code != exitOK {
		t.Fatalf("verify: exit %d\n%s%s", code, out, errOut)
	}
	if !strings.Contains(out, ", 3 of them sealed, key destroyed") {
		t.Errorf("verify does not report the revoked referral's 3 events as sealed, key destroyed:\n%s", out)
	}
}

// dataKeys are the data keys a node's store holds.
func dataKeys(t *testing.T, db string) [][]byte {
	t.Helper()
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, db)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	rows, err := conn.Query(ctx, "SELECT data_key FROM core.referral WHERE data_key IS NOT NULL")
	if err != nil {
		t.Fatal(err)
	}
	keys, err := pgx.CollectRows(rows, pgx.RowTo[[]byte])
	if err != nil {
		t.Fatal(err)
	}
	return keys
}

// referralEvents are the events of referral id on the stream, receipts
// left out.
func referralEvents(t *testing.T, n *network, id uuid.UUID) []*ce.Event {
	t.Helper()
	ctx := context.Background()
	st, err := n.JetStream().Stream(ctx, bus.Stream)
	if err != nil {
		t.Fatal(err)
	}
	info, err := st.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var out []*ce.Event
	for seq := info.State.FirstSeq; seq <= info.State.LastSeq && info.State.Msgs > 0; seq++ {
		m, err := st.GetMsg(ctx, seq)
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(m.Subject, ".referral.") {
			continue
		}
		e, err := event.Decode(m.Header, m.Data)
		if err != nil {
			t.Fatal(err)
		}
		if e.Subject() == id.String() {
			out = append(out, e)
		}
	}
	return out
}
