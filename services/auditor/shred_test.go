package main

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	ce "github.com/cloudevents/sdk-go/v2/event"
	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/refbus/refbus/pkg/referral"
	"github.com/refbus/refbus/schemas"
	nodeapp "github.com/refbus/refbus/services/internal/core/app"
	"github.com/refbus/refbus/services/internal/core/nodetest"
)

// Once a family revokes its consent, or a supervisor erases the person
// on request, the referral's data key is destroyed at both its nodes, and
// each node destroys its sealing key of the day once it is retired and
// used up: from then on no node opens the referral's events with any key
// that remains, while the stream stays complete and verify passes,
// reporting them as sealed, key destroyed. A referral about someone else
// still opens with the key its nodes keep (the check can succeed).
func TestShreddedReferralUnreadableButVerifiable(t *testing.T) {
	t.Parallel()
	for _, how := range []string{"revoked", "erased"} {
		t.Run(how, func(t *testing.T) {
			t.Parallel()
			shredded(t, how)
		})
	}
}

func shredded(t *testing.T, how string) {
	n := newNetwork(t, "health", "social")
	ctx := context.Background()
	reg, err := schemas.Registry()
	if err != nil {
		t.Fatal(err)
	}
	const note, iin = "The mother says her partner hits the children", "880101300123"
	revoked := n.consentOf(t, "health", "social", iin)
	r, err := n.app("health").CreateReferral(ctx, nodeapp.NewReferral{ToOrg: "social", Service: "housing", Note: note, PersonID: iin, ConsentID: revoked})
	if err != nil {
		t.Fatal(err)
	}
	kept, err := n.app("health").CreateReferral(ctx, nodeapp.NewReferral{ToOrg: "social", Service: "housing", Note: "risk of eviction", ConsentID: n.consent(t, "health", "social")})
	if err != nil {
		t.Fatal(err)
	}
	n.status("social", r.ID, "received")
	n.status("social", kept.ID, "received")
	n.move("social", r.ID, referral.Accept, nodeapp.MoveInput{Note: "we will call the mother today"})
	n.status("health", r.ID, "accepted")
	if how == "revoked" {
		if _, err := n.app("health").RevokeConsent(ctx, revoked, "the mother withdrew it"); err != nil {
			t.Fatal(err)
		}
		n.status("social", r.ID, "cancelled")
	} else {
		// The receiver erases: it fails the accepted referral, and the
		// sender erases its side too.
		e, err := n.app("social").ErasePerson(ctx, iin, "the mother asked, in writing")
		if err != nil || len(e.Referrals) != 1 || e.Referrals[0] != r.ID {
			t.Fatalf("erase: %+v, %v", e, err)
		}
		n.status("health", r.ID, "failed")
	}
	for _, name := range []string{"health", "social"} {
		if how == "revoked" && name == "health" {
			continue // the sender keeps what it wrote; its data key goes
		}
		nodetest.Eventually(t, 30*time.Second, func() error {
			if got, _ := n.Referral(name, r.ID); got.Note != "" {
				return fmt.Errorf("%s still holds the note %q", name, got.Note)
			}
			return nil
		})
	}
	// Nor in old row versions on the receiver's disk: its store was
	// rewritten after the erasure.
	nodetest.Eventually(t, 30*time.Second, func() error {
		if n.FilesHold("social", note) {
			return errors.New("a file of social's database still holds the note")
		}
		return nil
	})
	nodetest.Eventually(t, 30*time.Second, func() error {
		if k := dataKeys(t, n.dbs["health"]); len(k) != 1 {
			return fmt.Errorf("health holds %d data keys, want 1 (the other referral's)", len(k))
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
				if key, err := n.app(name).DataKeyOf(ctx, uuid.MustParse(e.Subject()), w); err == nil {
					if c := e.Clone(); reg.Open(&c, key) == nil {
						with = append(with, name+"'s sealing key")
					}
				}
			}
		}
		return with
	}
	var gone []*ce.Event
	for _, e := range n.StreamEvents(r.ID.String()) {
		if len(reg.SealedFields(e.Type())) > 0 {
			gone = append(gone, e)
		}
	}
	if len(gone) != 3 {
		t.Fatalf("%d events of the %s referral on the stream, want 3 (requested, accepted, and its end)", len(gone), how)
	}
	for _, e := range gone {
		if !reg.IsSealed(e) {
			t.Fatalf("%s is not sealed", e.Type())
		}
		if with := opens(e); len(with) > 0 {
			t.Errorf("the %s referral's %s still opens with %s", how, e.Type(), strings.Join(with, ", "))
		}
	}
	for _, e := range n.StreamEvents(kept.ID.String()) {
		if with := opens(e); len(with) != 2 || !strings.Contains(with[0], "data key") || !strings.Contains(with[1], "data key") {
			t.Errorf("the other referral's %s opens with %v, want both nodes' data keys only", e.Type(), with)
		}
	}

	code, out, errOut := runAudit(t, "--nats", n.nats, "verify", "--trust", n.trustFile)
	if code != exitOK {
		t.Fatalf("verify: exit %d\n%s%s", code, out, errOut)
	}
	if !strings.Contains(out, ", 3 of them sealed, key destroyed") {
		t.Errorf("verify does not report the %s referral's 3 events as sealed, key destroyed:\n%s", how, out)
	}
}

// consentOf records at from a consent, for an hour, to share a summary
// and the identity of the person with national id iin with to.
func (n *network) consentOf(t *testing.T, from, to, iin string) uuid.UUID {
	t.Helper()
	c, err := n.app(from).RecordConsent(context.Background(), nodeapp.NewConsent{GivenBy: "mother", PersonID: iin, ToOrg: to, Purpose: "help",
		DataCategories: []string{schemas.CategorySummary, schemas.CategoryIdentity}, ExpiresAt: time.Now().Add(time.Hour)})
	if err != nil {
		t.Fatal(err)
	}
	return c.ID
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
