package agency_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	ce "github.com/cloudevents/sdk-go/v2/event"
	"github.com/google/uuid"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nkeys"

	"github.com/refbus/refbus/pkg/bus"
	"github.com/refbus/refbus/pkg/event"
	"github.com/refbus/refbus/pkg/natstest"
	"github.com/refbus/refbus/schemas"
	"github.com/refbus/refbus/services/internal/agency"
)

// Receipts come several to a message (a CloudEvents batch). Each event of a
// batch is judged on its own: good receipts apply, a bad one is stored as
// rejected with its reason, and the message is settled once. A batch that
// is not an array of events is rejected whole.
func TestBatchedReceiptsJudgedOneByOne(t *testing.T) {
	t.Parallel()
	n := newNetwork(t, "health", "ngo")
	r := n.refer("health", "ngo", "legal_help", "")
	n.both(r, "received")
	reg, err := schemas.Registry()
	if err != nil {
		t.Fatal(err)
	}
	receipt := func(from string, data map[string]any) *ce.Event {
		t.Helper()
		e, err := reg.Build(bus.Source(from), bus.ReceiptType, r.ID.String(), data)
		if err != nil {
			t.Fatal(err)
		}
		return e
	}
	good := receipt("ngo", map[string]any{"event_id": uuid.NewString(), "event_type": "org.refbus.referral.requested.v1", "outcome": "applied", "stream_seq": 1})
	noOutcome := receipt("ngo", map[string]any{"event_id": uuid.NewString(), "event_type": "org.refbus.referral.requested.v1", "stream_seq": 1})
	forged := receipt("social", map[string]any{"event_id": uuid.NewString(), "event_type": "org.refbus.referral.requested.v1", "outcome": "applied", "stream_seq": 1})
	msg, err := event.NewBatchMsg(bus.Subject("ngo", "health", bus.ReceiptType), []*ce.Event{good, noOutcome, forged})
	if err != nil {
		t.Fatal(err)
	}
	js := n.jetstream()
	if _, err := js.PublishMsg(context.Background(), msg); err != nil {
		t.Fatal(err)
	}
	broken := &nats.Msg{Subject: bus.Subject("ngo", "health", bus.ReceiptType), Header: nats.Header{"Content-Type": {event.BatchContentType}}, Data: []byte(`[{"specversion":`)}
	if _, err := js.PublishMsg(context.Background(), broken); err != nil {
		t.Fatal(err)
	}

	eventually(t, 10*time.Second, func() error {
		rej, err := n.svc("health").svc.Rejections(context.Background(), 10)
		if err != nil {
			return err
		}
		var reasons []string
		for _, x := range rej {
			reasons = append(reasons, x.EventID+": "+x.Reason)
		}
		all := strings.Join(reasons, " | ")
		if len(rej) != 3 {
			return fmt.Errorf("%d rejections, want 3: %s", len(rej), all)
		}
		for _, want := range []string{noOutcome.ID() + ": ", "outcome", forged.ID() + ": ", "does not match its sender", "batch is not a JSON array"} {
			if !strings.Contains(all, want) {
				return fmt.Errorf("no rejection says %q: %s", want, all)
			}
		}
		if strings.Contains(all, good.ID()) {
			return fmt.Errorf("the good receipt was rejected: %s", all)
		}
		return nil
	})
	// Both messages are settled: nothing waits for redelivery.
	eventually(t, 10*time.Second, func() error {
		c, err := js.Consumer(context.Background(), bus.Stream, "health")
		if err != nil {
			return err
		}
		info, err := c.Info(context.Background())
		if err != nil {
			return err
		}
		if info.NumAckPending != 0 || info.NumRedelivered != 0 {
			return fmt.Errorf("%d messages wait for an ack, %d were redelivered", info.NumAckPending, info.NumRedelivered)
		}
		return nil
	})
	if got, _ := n.referralStatus("health", r.ID.String()); got.Status != "received" {
		t.Fatalf("referral is %q at its sender, want received", got.Status)
	}
}

// A referral its receiver refuses at the bus (here: not signed with the
// key ngo trusts for health) stays requested at its sender, which shows
// why; the refusal comes back in a receipt.
func TestRefusedOnDeliveryShowsWhy(t *testing.T) {
	t.Parallel()
	srv := natstest.New(t)
	n := &network{t: t, nats: srv, natsURL: srv.ClientURL(), urls: map[string]string{}, svcs: map[string]*running{}}
	kp, err := nkeys.CreateAccount()
	if err != nil {
		t.Fatal(err)
	}
	stranger, err := kp.PublicKey()
	if err != nil {
		t.Fatal(err)
	}
	for _, a := range []string{"health", "ngo"} {
		n.urls[a] = newDB(t)
		n.start(a, func(c *agency.Config) {
			if a == "ngo" {
				c.Trust = event.Trust{"health": stranger}
			}
		})
	}
	r := n.refer("health", "ngo", "legal_help", "")
	eventually(t, 10*time.Second, func() error {
		got, err := n.referralStatus("health", r.ID.String())
		if err != nil {
			return err
		}
		if got.DeliveryError == "" {
			return fmt.Errorf("no delivery error yet (status %s)", got.Status)
		}
		if got.Status != "requested" || !strings.Contains(got.DeliveryError, "sign") {
			return fmt.Errorf("status %s, delivery error %q", got.Status, got.DeliveryError)
		}
		return nil
	})
}
