package inbox

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/refbus/refbus/pkg/bus"
	"github.com/refbus/refbus/pkg/internal/busdb"
)

// maxDeliveriesAdvisory is what JetStream publishes when a consumer gives
// up redelivering a message.
type maxDeliveriesAdvisory struct {
	Stream     string `json:"stream"`
	Consumer   string `json:"consumer"`
	StreamSeq  uint64 `json:"stream_seq"`
	Deliveries uint64 `json:"deliveries"`
}

// WatchDeadLetters records in the dead_letter table every event JetStream
// stops redelivering to this node (after MaxDeliver), from its advisories,
// until ctx ends. The event stays in the stream; Redrive applies it later.
func (c *Consumer) WatchDeadLetters(ctx context.Context, nc *nats.Conn, stream jetstream.Stream) error {
	subject := "$JS.EVENT.ADVISORY.CONSUMER.MAX_DELIVERIES." + bus.Stream + "." + c.self
	sub, err := nc.Subscribe(subject, func(m *nats.Msg) {
		var a maxDeliveriesAdvisory
		if err := json.Unmarshal(m.Data, &a); err != nil {
			c.log.Error("dead letter advisory unreadable", "err", err)
			return
		}
		actx, cancel := context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
		subj := ""
		if raw, err := stream.GetMsg(actx, a.StreamSeq); err == nil {
			subj = raw.Subject
		}
		if err := busdb.New(c.pool).DeadLetterInsert(actx, busdb.DeadLetterInsertParams{
			StreamSeq: int64(a.StreamSeq), Subject: subj, Deliveries: int32(a.Deliveries),
		}); err != nil {
			c.log.Error("record dead letter", "err", err, "stream_seq", a.StreamSeq)
			return
		}
		c.log.Warn("event gave up after its deliveries; recorded as dead letter", "stream_seq", a.StreamSeq, "deliveries", a.Deliveries)
	})
	if err != nil {
		return fmt.Errorf("watch dead letters: %w", err)
	}
	<-ctx.Done()
	return sub.Unsubscribe()
}

// Redrive reads each dead letter back from the stream and applies it
// through the same idempotent path as a delivery. It returns how many were
// settled (applied, rejected or found to be repeats); one that still cannot
// apply stays a dead letter.
func (c *Consumer) Redrive(ctx context.Context, stream jetstream.Stream) (int, error) {
	q := busdb.New(c.pool)
	rows, err := q.DeadLetterPending(ctx)
	if err != nil {
		return 0, fmt.Errorf("read dead letters: %w", err)
	}
	settled := 0
	for _, r := range rows {
		raw, err := stream.GetMsg(ctx, uint64(r.StreamSeq))
		if err != nil {
			return settled, fmt.Errorf("read stream message %d: %w", r.StreamSeq, err)
		}
		ds := c.split(nil, raw.Subject, raw.Header, raw.Data, raw.Sequence, 0)
		if err := c.apply(ctx, ds); err != nil {
			return settled, fmt.Errorf("redrive %d: %w", r.StreamSeq, err)
		}
		if slices.ContainsFunc(ds, func(d *delivery) bool { return d.outcome == "later" }) {
			continue
		}
		if err := q.DeadLetterMarkRedriven(ctx, r.StreamSeq); err != nil {
			return settled, fmt.Errorf("mark redriven: %w", err)
		}
		settled++
	}
	return settled, nil
}

// DeadLetter is an event JetStream stopped redelivering.
type DeadLetter struct {
	StreamSeq  int64     `json:"stream_seq"`
	Subject    string    `json:"subject"`
	Deliveries int32     `json:"deliveries"`
	NotedAt    time.Time `json:"noted_at"`
}

// DeadLetters lists the dead letters not yet re-driven.
func (c *Consumer) DeadLetters(ctx context.Context) ([]DeadLetter, error) {
	rows, err := busdb.New(c.pool).DeadLetterPending(ctx)
	if err != nil {
		return nil, fmt.Errorf("read dead letters: %w", err)
	}
	out := make([]DeadLetter, len(rows))
	for i, r := range rows {
		out[i] = DeadLetter{StreamSeq: r.StreamSeq, Subject: r.Subject, Deliveries: r.Deliveries, NotedAt: r.NotedAt}
	}
	return out, nil
}
