package core_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/refbus/refbus/pkg/outbox"
	"github.com/refbus/refbus/services/internal/core"
	"github.com/refbus/refbus/services/internal/core/nodetest"
)

// The broker acknowledged an event and then lost it (as JetStream can with
// its default sync interval and a power cut): no receipt ever comes, so the
// sender re-sends it under a new message id, and it arrives, once.
func TestLostAcknowledgedEventIsResent(t *testing.T) {
	t.Parallel()
	n := nodetest.New(t)
	n.Start("legal_aid", ledgerKind(legalHelp), nil)
	ctx := context.Background()

	// Write the referral with the relay stopped before it publishes...
	hook, fired := killAt(outbox.BeforePublish)
	crashing := n.Start("clinic", plain(healthCheck), func(c *core.Config) { c.Relay.Fault = hook })
	r := create(t, n, "clinic", "legal_aid", "legal_help")
	waitFired(t, fired, "the clinic's relay")
	if err := crashing.Stop(); !errors.Is(err, outbox.ErrFault) {
		t.Fatalf("the clinic stopped with %v, want the relay's fault", err)
	}

	// ...then record it as published long ago, as if the broker had
	// acknowledged it and lost it: nothing will publish it as it stands.
	conn, err := pgx.Connect(ctx, n.DB("clinic"))
	if err != nil {
		t.Fatal(err)
	}
	tag, err := conn.Exec(ctx, `WITH published AS (
		INSERT INTO bus.outbox_published (seq, stream_seq, published_at) SELECT seq, 0, now() - interval '1 hour' FROM bus.outbox
	)
	UPDATE bus.relay_cursor SET (txid, seq) = (SELECT txid, seq FROM bus.outbox ORDER BY txid DESC, seq DESC LIMIT 1)`)
	conn.Close(ctx)
	if err != nil || tag.RowsAffected() != 1 {
		t.Fatalf("mark lost: %v %v", tag, err)
	}
	if n.EventsTo("legal_aid", r.ID.String()) {
		t.Fatal("the referral is on the stream: it was not lost")
	}

	n.Restart("clinic", func(c *core.Config) { c.Relay.ReceiptTimeout = time.Second })
	receivedOnce(t, n, "clinic", "legal_aid", []uuid.UUID{r.ID}, "received")
	wantSteps(t, n, "clinic", r, "request", "receive")
}
