package core_test

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
	"github.com/refbus/refbus/schemas"
	"github.com/refbus/refbus/services/internal/core"
	"github.com/refbus/refbus/services/internal/core/nodetest"
)

// Receipts come several to a message (a CloudEvents batch). Each event of a
// batch is judged on its own: good receipts apply, a bad one is stored as
// rejected with its reason, and the message is settled once. A batch that
// is not an array of events is rejected whole.
func TestBatchedReceiptsJudgedOneByOne(t *testing.T) {
	t.Parallel()
	n := nodetest.New(t)
	n.Start("clinic", plain(healthCheck), nil)
	n.Start("legal_aid", plain(legalHelp), nil)
	r := n.Refer("clinic", "legal_aid", "legal_help", "", "")
	n.Both(r, "received")
	reg := registry(t)
	receipt := func(from string, data map[string]any) *ce.Event {
		t.Helper()
		e, err := reg.Build(bus.Source(from), schemas.TypeReceipt, r.ID.String(), data)
		if err != nil {
			t.Fatal(err)
		}
		return e
	}
	good := receipt("legal_aid", map[string]any{"event_id": uuid.NewString(), "event_type": schemas.TypeRequested, "outcome": "applied", "stream_seq": 1})
	noOutcome := receipt("legal_aid", map[string]any{"event_id": uuid.NewString(), "event_type": schemas.TypeRequested, "stream_seq": 1})
	forged := receipt("social", map[string]any{"event_id": uuid.NewString(), "event_type": schemas.TypeRequested, "outcome": "applied", "stream_seq": 1})
	subject := bus.Subject("legal_aid", "clinic", schemas.TypeReceipt)
	msg, err := event.NewBatchMsg(subject, []*ce.Event{good, noOutcome, forged})
	if err != nil {
		t.Fatal(err)
	}
	js := n.JetStream()
	if _, err := js.PublishMsg(context.Background(), msg); err != nil {
		t.Fatal(err)
	}
	broken := &nats.Msg{Subject: subject, Header: nats.Header{"Content-Type": {event.BatchContentType}}, Data: []byte(`[{"specversion":`)}
	if _, err := js.PublishMsg(context.Background(), broken); err != nil {
		t.Fatal(err)
	}

	nodetest.Eventually(t, 30*time.Second, func() error {
		reasons, err := rejectionReasons(n, "clinic")
		if err != nil {
			return err
		}
		all := strings.Join(reasons, " | ")
		if len(reasons) != 3 {
			return fmt.Errorf("%d rejections, want 3: %s", len(reasons), all)
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
	nodetest.Eventually(t, 30*time.Second, func() error {
		info := consumerInfo(t, js, "clinic")
		if info.NumAckPending != 0 || info.NumRedelivered != 0 {
			return fmt.Errorf("%d messages wait for an ack, %d were redelivered", info.NumAckPending, info.NumRedelivered)
		}
		return nil
	})
	if got, _ := n.Referral("clinic", r.ID); got.Status != "received" {
		t.Fatalf("referral is %q at its sender, want received", got.Status)
	}
}

// A referral its receiver refuses at the bus (here: not signed with the
// key the receiver trusts for its sender) stays requested at its sender,
// which shows why; the refusal comes back in a receipt.
func TestRefusedOnDeliveryShowsWhy(t *testing.T) {
	t.Parallel()
	n := nodetest.New(t)
	kp, err := nkeys.CreateAccount()
	if err != nil {
		t.Fatal(err)
	}
	stranger, err := kp.PublicKey()
	if err != nil {
		t.Fatal(err)
	}
	n.Start("clinic", plain(healthCheck), nil)
	n.Start("legal_aid", plain(legalHelp), func(c *core.Config) { c.Trust = event.Trust{"clinic": stranger} })
	r := n.Refer("clinic", "legal_aid", "legal_help", "", "")
	nodetest.Eventually(t, 30*time.Second, func() error {
		got, err := n.Referral("clinic", r.ID)
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
	if _, err := n.Referral("legal_aid", r.ID); err == nil {
		t.Fatal("the receiver took a referral it refused")
	}
}
