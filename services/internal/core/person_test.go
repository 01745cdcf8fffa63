package core_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/refbus/refbus/pkg/bus"
	"github.com/refbus/refbus/pkg/event"
	"github.com/refbus/refbus/pkg/person"
	"github.com/refbus/refbus/services/internal/core"
	"github.com/refbus/refbus/services/internal/core/app"
	"github.com/refbus/refbus/services/internal/core/nodetest"
)

// A referral about a person joins the open case of the node that makes
// it, if it serves the person already: a family referred to a node and
// referred on from it stays one case. A node that was never party to the
// person's case learns nothing of it: its referral starts a case of its
// own; the node that receives it and already serves the person sees the
// link. The national id goes nowhere.
func TestSamePersonJoinsOpenCase(t *testing.T) {
	t.Parallel()
	const iin = "880101300123"
	n := nodetest.New(t)
	n.Start("clinic", plain(healthCheck), nil)
	n.Start("social", plain(familySupport), nil)
	n.Start("legal_aid", plain(legalHelp), nil)
	refer := func(from, to, service, id string) app.Referral {
		t.Helper()
		status, body, _ := n.Do(from, "POST", "/api/v1/referrals", n.Consented(from, `{"to_org":"`+to+`","service":"`+service+`","note":"n","person_id":"`+id+`"}`))
		if status != 201 {
			t.Fatalf("%s: %d %s", from, status, body)
		}
		return nodetest.Decode[app.Referral](t, body)
	}
	first := refer("clinic", "legal_aid", "legal_help", iin)
	n.Both(first, "received")

	// Social never served the person: no index tells it of the case.
	second := refer("social", "legal_aid", "legal_help", " "+iin+" ")
	if second.CaseID == first.CaseID {
		t.Fatal("social, never party to the person's case, found it")
	}
	n.Both(second, "received")
	// legal_aid serves the person in both: it sees the link.
	for _, c := range []struct {
		r    app.Referral
		want uuid.UUID
	}{{first, second.CaseID}, {second, first.CaseID}} {
		got, err := n.Referral("legal_aid", c.r.ID)
		if err != nil || len(got.SamePersonCases) != 1 || got.SamePersonCases[0] != c.want {
			t.Errorf("legal_aid's referral %s links to cases %v, want [%s] (%v)", c.r.ID, got.SamePersonCases, c.want, err)
		}
	}
	if got, _ := n.Referral("social", second.ID); len(got.SamePersonCases) != 0 {
		t.Errorf("social sees other cases of the person: %v", got.SamePersonCases)
	}
	// legal_aid refers the person on: the referral joins the family's case.
	onward := refer("legal_aid", "clinic", "child_health_check", iin)
	if onward.CaseID != second.CaseID {
		t.Errorf("legal_aid's onward referral started case %s, want the person's open case %s", onward.CaseID, second.CaseID)
	}
	// Someone else gets a case of their own.
	other := refer("clinic", "legal_aid", "legal_help", "950715401237")
	if other.CaseID == first.CaseID {
		t.Fatal("a different person joined the case")
	}
	n.Both(onward, "received")
	// Received at their senders: every request and receipt is on the bus.
	n.Both(other, "received")

	// The id is in no answer and no event on the bus.
	nodetest.Eventually(t, 30*time.Second, n.ConsumerIdle("legal_aid"))
	for _, node := range []string{"clinic", "social", "legal_aid"} {
		for _, path := range []string{"/api/v1/referrals", "/api/v1/inbox", "/api/v1/cases/" + first.CaseID.String()} {
			if _, body, _ := n.Do(node, "GET", path, ""); strings.Contains(body, iin) {
				t.Errorf("%s %s shows the national id", node, path)
			}
		}
		if strings.Contains(n.StoreText(node), iin) {
			t.Errorf("%s's store holds the national id", node)
		}
	}
	js := n.JetStream()
	ctx := context.Background()
	cons, err := js.OrderedConsumer(ctx, bus.Stream, jetstream.OrderedConsumerConfig{})
	if err != nil {
		t.Fatal(err)
	}
	stream, err := js.Stream(ctx, bus.Stream)
	if err != nil {
		t.Fatal(err)
	}
	info, err := stream.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	total := int(info.State.Msgs)
	batch, err := cons.Fetch(total, jetstream.FetchMaxWait(5*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	// Receipts may share a message (a batch): count events.
	seen, events := 0, 0
	for m := range batch.Messages() {
		seen++
		if strings.Contains(string(m.Data()), iin) {
			t.Errorf("event on %s carries the national id", m.Subject())
		}
		events++
		if event.IsBatch(m.Headers()) {
			parts, err := event.SplitBatch(m.Data())
			if err != nil {
				t.Fatal(err)
			}
			events += len(parts) - 1
		}
	}
	if seen != total || events < 8 {
		t.Fatalf("read %d of %d messages, %d events, from the stream; want all, with 4 requests and their receipts", seen, total, events)
	}
}

// A national id that is not one is refused with the reason, without
// echoing it, and nothing is written.
func TestBadPersonIDs(t *testing.T) {
	t.Parallel()
	n := nodetest.New(t)
	n.Start("clinic", plain(healthCheck), nil)
	n.Start("legal_aid", plain(legalHelp), nil)
	for _, c := range []struct{ id, want string }{
		{"880101300124", "check digit"},
		{"88010130012", "12 digits"},
		{"8801013a0123", "letter"},
		{"881301300123", "date"},
	} {
		status, body, _ := n.Do("clinic", "POST", "/api/v1/referrals", n.Consented("clinic", `{"to_org":"legal_aid","service":"legal_help","note":"n","person_id":"`+c.id+`"}`))
		if status != 422 || !strings.Contains(body, c.want) || strings.Contains(body, c.id) {
			t.Errorf("person_id %s: %d %s; want 422 mentioning %q, without echoing the id", c.id, status, body, c.want)
		}
	}
	if c := n.Counts("clinic"); len(c.Outbox) != 0 {
		t.Fatalf("refused requests wrote events: %+v", c.Outbox)
	}
	if sent, _ := n.App("clinic").Sent(t.Context(), "", 10); len(sent) != 0 {
		t.Fatalf("refused requests wrote referrals: %+v", sent)
	}
}

// The national id follows the network: a node of the Kyrgyz network takes
// a PIN and refuses a valid Kazakh IIN, saying what it wants.
func TestPersonIDFollowsTheNetwork(t *testing.T) {
	t.Parallel()
	n := nodetest.New(t)
	n.Start("bishkek_clinic", plain(healthCheck), func(c *core.Config) { c.Country = person.KG })
	n.Start("legal_aid", plain(legalHelp), nil)
	const iin = "880101300123" // valid in Kazakhstan
	status, body, _ := n.Do("bishkek_clinic", "POST", "/api/v1/referrals", n.Consented("bishkek_clinic", `{"to_org":"legal_aid","service":"legal_help","note":"n","person_id":"`+iin+`"}`))
	if status != 422 || !strings.Contains(body, "14") || strings.Contains(body, iin) {
		t.Fatalf("an IIN at a Kyrgyz node: %d %s; want 422 asking for a 14-digit PIN", status, body)
	}
}

// Erasing a person on request: bad requests get a problem that says what
// is wrong and change nothing; the erasure ends the open referral about
// the person, empties what it said at both its nodes (the other person's
// stays), forgets the person for matching, and moves on it are
// refused from then on.
func TestErasePerson(t *testing.T) {
	t.Parallel()
	const iin, note = "880101300123", "Father drinks; the boy sleeps at the neighbours'"
	n := nodetest.New(t)
	n.Start("clinic", plain(healthCheck), nil)
	n.Start("legal_aid", plain(legalHelp), nil)
	status, body, _ := n.Do("clinic", "POST", "/api/v1/referrals", n.Consented("clinic", `{"to_org":"legal_aid","service":"legal_help","note":"`+note+`","person_id":"`+iin+`"}`))
	if status != 201 {
		t.Fatalf("refer: %d %s", status, body)
	}
	r := nodetest.Decode[app.Referral](t, body)
	status, body, _ = n.Do("clinic", "POST", "/api/v1/referrals", n.Consented("clinic", `{"to_org":"legal_aid","service":"legal_help","note":"someone else","person_id":"950715401237"}`))
	if status != 201 {
		t.Fatalf("refer: %d %s", status, body)
	}
	other := nodetest.Decode[app.Referral](t, body)
	n.Both(r, "received")
	n.Both(other, "received")

	n.Refused("clinic", "POST", "/api/v1/people/erase", `{"person_id":"`+iin+`"}`, 422, "reason")
	n.Refused("clinic", "POST", "/api/v1/people/erase", `{"person_id":"880101300124","reason":"asked"}`, 422, "person_id")
	n.Refused("clinic", "POST", "/api/v1/people/erase", `{"person_id":"010101500122","reason":"asked"}`, 404, "no referral about this person")
	if got, _ := n.Referral("clinic", r.ID); got.Note != note || got.Status != "requested" && got.Status != "received" {
		t.Fatalf("a refused erasure changed the referral: %+v", got)
	}

	if !n.FilesHold("clinic", note) {
		t.Fatal("the note is not in the clinic's database files: the check below would prove nothing")
	}
	status, body, _ = n.Do("clinic", "POST", "/api/v1/people/erase", `{"person_id":"`+iin+`","reason":"the mother asked, in writing"}`)
	if status != 200 || !strings.Contains(body, r.ID.String()) || strings.Contains(body, other.ID.String()) {
		t.Fatalf("erase: %d %s", status, body)
	}
	n.Both(r, "cancelled")
	for _, node := range []string{"clinic", "legal_aid"} {
		nodetest.Eventually(t, 30*time.Second, func() error {
			got, err := n.Referral(node, r.ID)
			if err != nil || got.Note != "" || got.Reason != "" {
				return fmt.Errorf("%s still holds %+v, %v", node, got, err)
			}
			return nil
		})
		if got, _ := n.Referral(node, other.ID); got.Note != "someone else" {
			t.Errorf("%s lost the other person's note: %q", node, got.Note)
		}
		if s := n.StoreText(node); strings.Contains(s, note) {
			t.Errorf("%s's store still holds the note", node)
		}
		// Not even in old row versions on disk: the store was rewritten.
		nodetest.Eventually(t, 30*time.Second, func() error {
			if n.FilesHold(node, note) {
				return fmt.Errorf("a file of %s's database still holds the note", node)
			}
			return nil
		})
	}
	if _, err := n.App("clinic").Move(context.Background(), other.ID, "cancel", app.MoveInput{Reason: "done"}); err != nil {
		t.Fatalf("the other referral cannot be moved: %v", err)
	}
	n.Refused("legal_aid", "POST", "/api/v1/referrals/"+r.ID.String()+"/accept", "", 409, "")
	// The clinic no longer holds the person: a new referral about them
	// starts a new case.
	again := n.Refer("clinic", "legal_aid", "legal_help", "", `"person_id":"`+iin+`"`)
	if again.CaseID == r.CaseID {
		t.Errorf("after the erasure the clinic still joins the person to case %s", r.CaseID)
	}
}
