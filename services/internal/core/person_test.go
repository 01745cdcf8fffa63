package core_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/refbus/refbus/pkg/bus"
	"github.com/refbus/refbus/pkg/event"
	"github.com/refbus/refbus/pkg/person"
	"github.com/refbus/refbus/services/internal/core"
	"github.com/refbus/refbus/services/internal/core/app"
	"github.com/refbus/refbus/services/internal/core/nodetest"
)

// A second referral for the same child joins the same open case, even when
// another node starts it, and the national id goes nowhere.
func TestSamePersonJoinsOpenCase(t *testing.T) {
	t.Parallel()
	const iin = "880101300123"
	n := nodetest.New(t)
	n.Start("clinic", plain(healthCheck), nil)
	n.Start("social", plain(familySupport), nil)
	n.Start("legal_aid", plain(legalHelp), nil)
	status, body, _ := n.Do("clinic", "POST", "/api/v1/referrals", n.Consented("clinic", `{"to_org":"legal_aid","service":"legal_help","note":"n","person_id":"`+iin+`"}`))
	if status != 201 {
		t.Fatalf("clinic: %d %s", status, body)
	}
	first := nodetest.Decode[app.Referral](t, body)
	n.Both(first, "received")

	status, body, _ = n.Do("social", "POST", "/api/v1/referrals", n.Consented("social", `{"to_org":"legal_aid","service":"legal_help","note":"n","person_id":" `+iin+` "}`))
	if status != 201 {
		t.Fatalf("social: %d %s", status, body)
	}
	second := nodetest.Decode[app.Referral](t, body)
	if second.CaseID != first.CaseID {
		t.Fatalf("social's referral for the same person started case %s, want %s", second.CaseID, first.CaseID)
	}
	// Someone else gets a case of their own.
	_, body, _ = n.Do("social", "POST", "/api/v1/referrals", n.Consented("social", `{"to_org":"legal_aid","service":"legal_help","note":"n","person_id":"950715401237"}`))
	other := nodetest.Decode[app.Referral](t, body)
	if other.CaseID == first.CaseID {
		t.Fatal("a different person joined the case")
	}
	// Received at their senders: every request and receipt is on the bus.
	n.Both(second, "received")
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
	if seen != total || events < 6 {
		t.Fatalf("read %d of %d messages, %d events, from the stream; want all, with 3 requests and their receipts", seen, total, events)
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
