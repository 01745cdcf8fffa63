package agency_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/refbus/refbus/pkg/bus"
	"github.com/refbus/refbus/pkg/event"
	"github.com/refbus/refbus/services/internal/agency"
)

// A second referral for the same child joins the same open case, even when
// another agency starts it, and the national id goes nowhere.
func TestSamePersonJoinsOpenCase(t *testing.T) {
	t.Parallel()
	const iin = "880101300123"
	n := newNetwork(t, "health", "social", "ngo")
	status, body, _ := n.do("health", "POST", "/api/v1/referrals", n.consented("health", `{"to_agency":"ngo","service":"legal_help","note":"n","person_id":"`+iin+`"}`))
	if status != 201 {
		t.Fatalf("health: %d %s", status, body)
	}
	first := decode[agency.Referral](t, body)
	n.both(first, "received")

	status, body, _ = n.do("social", "POST", "/api/v1/referrals", n.consented("social", `{"to_agency":"ngo","service":"legal_help","note":"n","person_id":" `+iin+` "}`))
	if status != 201 {
		t.Fatalf("social: %d %s", status, body)
	}
	second := decode[agency.Referral](t, body)
	if second.CaseID != first.CaseID {
		t.Fatalf("social's referral for the same person started case %s, want %s", second.CaseID, first.CaseID)
	}
	// Someone else gets a case of their own.
	_, body, _ = n.do("social", "POST", "/api/v1/referrals", n.consented("social", `{"to_agency":"ngo","service":"legal_help","note":"n","person_id":"950715401237"}`))
	other := decode[agency.Referral](t, body)
	if other.CaseID == first.CaseID {
		t.Fatal("a different person joined the case")
	}
	// Received at their senders: every request and receipt is on the bus.
	n.both(second, "received")
	n.both(other, "received")

	// The id is in no answer and no event on the bus.
	eventually(t, 10*time.Second, n.consumerIdle("ngo"))
	for _, a := range []string{"health", "social", "ngo"} {
		for _, path := range []string{"/api/v1/referrals", "/api/v1/inbox", "/api/v1/cases/" + first.CaseID.String()} {
			if _, body, _ := n.do(a, "GET", path, ""); strings.Contains(body, iin) {
				t.Errorf("%s %s shows the national id", a, path)
			}
		}
	}
	js := n.jetstream()
	cons, err := js.OrderedConsumer(context.Background(), bus.Stream, jetstream.OrderedConsumerConfig{})
	if err != nil {
		t.Fatal(err)
	}
	stream, err := js.Stream(context.Background(), bus.Stream)
	if err != nil {
		t.Fatal(err)
	}
	info, err := stream.Info(context.Background())
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

func TestBadPersonIDs(t *testing.T) {
	t.Parallel()
	n := newNetwork(t, "health")
	for _, c := range []struct{ id, want string }{
		{"880101300124", "check digit"},
		{"88010130012", "12 digits"},
		{"8801013a0123", "letter"},
		{"881301300123", "date"},
	} {
		status, body, _ := n.do("health", "POST", "/api/v1/referrals", n.consented("health", `{"to_agency":"ngo","service":"s","note":"n","person_id":"`+c.id+`"}`))
		if status != 422 || !strings.Contains(body, c.want) || strings.Contains(body, c.id) {
			t.Errorf("person_id %s: %d %s; want 422 mentioning %q, without echoing the id", c.id, status, body, c.want)
		}
	}
	if c := counts(t, n, "health"); len(c) != 0 {
		t.Fatalf("refused requests wrote: %v", c)
	}
}
