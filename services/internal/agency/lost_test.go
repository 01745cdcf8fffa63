package agency_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/refbus/refbus/pkg/outbox"
	"github.com/refbus/refbus/services/internal/agency"
)

// The broker acknowledged an event and then lost it (as JetStream can with
// its default sync interval and a power cut): no receipt ever comes, so the
// sender re-sends it under a new message id, and it arrives, once.
func TestLostAcknowledgedEventIsResent(t *testing.T) {
	t.Parallel()
	n := newNetwork(t, "ngo")
	n.urls["health"] = n.newDB()
	ctx := context.Background()

	// Write the referral with the relay stopped before it publishes...
	crashing := n.start("health", func(c *agency.Config) {
		c.Relay.Fault = func(stage string) error {
			if stage == "before_publish" {
				return errors.New("stopped")
			}
			return nil
		}
	})
	r, err := crashing.svc.CreateReferral(ctx, agency.NewReferral{ToAgency: "ngo", ConsentID: n.consent("health", "ngo"), Service: "legal_help", Note: "n"})
	if err != nil {
		t.Fatal(err)
	}
	if err := <-crashing.done; !errors.Is(err, outbox.ErrFault) {
		t.Fatalf("relay stopped with %v", err)
	}
	crashing.done <- nil
	_ = crashing.stop()

	// ...then record it as published long ago, as if the broker had
	// acknowledged it and lost it: nothing will publish it as it stands.
	conn, err := pgx.Connect(ctx, n.urls["health"])
	if err != nil {
		t.Fatal(err)
	}
	tag, err := conn.Exec(ctx, `WITH published AS (
		INSERT INTO outbox_published (seq, stream_seq, published_at) SELECT seq, 0, now() - interval '1 hour' FROM outbox
	)
	UPDATE relay_cursor SET (txid, seq) = (SELECT txid, seq FROM outbox ORDER BY txid DESC, seq DESC LIMIT 1)`)
	conn.Close(ctx)
	if err != nil || tag.RowsAffected() != 1 {
		t.Fatalf("mark lost: %v %v", tag, err)
	}

	n.start("health", func(c *agency.Config) { c.Relay.ReceiptTimeout = time.Second })
	eventually(t, 20*time.Second, wantStatus(n, "health", r.ID.String(), "received"))
	eventually(t, 10*time.Second, n.consumerIdle("ngo"))
	if c := counts(t, n, "ngo"); c["inbox "+requested+" applied"] != 1 {
		t.Fatalf("ngo counts: %v", c)
	}
}
