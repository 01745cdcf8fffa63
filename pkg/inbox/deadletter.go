package inbox

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
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

// WatchDeadLetters records in the dead_letter table the events JetStream
// stops redelivering to this node because their acknowledgements did not
// come in time, from its advisories, until ctx ends. (An event this node
// could not apply on its last delivery it records itself, with its
// message: see Run.) The advisory says only where the event is. Its
// message is read from stream if stream is not nil and this node may read
// the stream by sequence, which a node's own credentials do not allow;
// without it, the dead letter is recorded with a reason saying so, and
// only a Redrive given a stream that may be read (the admin's) applies it.
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
		p := busdb.DeadLetterInsertParams{StreamSeq: int64(a.StreamSeq), Deliveries: int32(a.Deliveries), Reason: errNoMessage.Error()}
		if stream != nil {
			gctx, cancel := context.WithTimeout(actx, readTimeout)
			raw, err := stream.GetMsg(gctx, a.StreamSeq)
			cancel()
			if err == nil {
				p.Subject, p.Payload, p.Reason = raw.Subject, nonNil(raw.Data), "not acknowledged in time on any delivery"
				if p.Header, err = encodeHeader(raw.Header); err != nil {
					c.log.Error("record dead letter", "err", err, "stream_seq", a.StreamSeq)
					return
				}
			}
		}
		if err := busdb.New(c.pool).DeadLetterInsert(actx, p); err != nil {
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

// readTimeout bounds a read of the stream by sequence for a dead letter:
// a read the node may not make is never answered.
const readTimeout = 2 * time.Second

// errNoMessage is the reason of a dead letter recorded without its
// message, and what Redrive returns for it when it cannot read it.
var errNoMessage = errors.New("message not recorded: this node could not read it from the stream (a node may not); re-drive it with credentials that may (the admin's)")

// recordDeadLetter records the message of ds (the deliveries of one
// message), which could not apply on its last delivery, as a dead letter.
func (c *Consumer) recordDeadLetter(ctx context.Context, ds []*delivery, reason string) error {
	m := ds[0].msg
	h, err := encodeHeader(m.Headers())
	if err != nil {
		return err
	}
	if err := busdb.New(c.pool).DeadLetterInsert(ctx, busdb.DeadLetterInsertParams{
		StreamSeq: int64(ds[0].seq), Subject: m.Subject(), Deliveries: int32(ds[0].tries),
		Header: h, Payload: nonNil(m.Data()), Reason: reason,
	}); err != nil {
		return fmt.Errorf("record dead letter: %w", err)
	}
	c.log.Warn("event could not apply on its last delivery; recorded as dead letter", "stream_seq", ds[0].seq, "deliveries", ds[0].tries)
	return nil
}

// nonNil is b, or an empty slice for nil: a dead letter's payload is NULL
// only when its message was not recorded.
func nonNil(b []byte) []byte {
	if b == nil {
		return []byte{}
	}
	return b
}

func encodeHeader(h nats.Header) ([]byte, error) {
	if len(h) == 0 {
		return nil, nil
	}
	b, err := json.Marshal(h)
	if err != nil {
		return nil, fmt.Errorf("encode header: %w", err)
	}
	return b, nil
}

// Redrive applies each dead letter again through the same idempotent path
// as a delivery: from its recorded message, or, for one recorded without,
// read back from stream (which must then be one that may read the stream
// by sequence; nil if none). It returns how many were settled (applied,
// rejected or found to be repeats); one that still cannot apply stays a
// dead letter. One it could not read stays too: Redrive goes on with the
// others and then returns an error that says who can re-drive it.
func (c *Consumer) Redrive(ctx context.Context, stream jetstream.Stream) (int, error) {
	q := busdb.New(c.pool)
	rows, err := q.DeadLetterPending(ctx)
	if err != nil {
		return 0, fmt.Errorf("read dead letters: %w", err)
	}
	settled := 0
	var unread error
	for _, r := range rows {
		subject, data := r.Subject, r.Payload
		var h nats.Header
		if r.Header != nil {
			if err := json.Unmarshal(r.Header, &h); err != nil {
				return settled, fmt.Errorf("dead letter %d: decode header: %w", r.StreamSeq, err)
			}
		}
		if data == nil {
			raw, err := readMsg(ctx, stream, uint64(r.StreamSeq))
			if err != nil {
				unread = cmp.Or(unread, fmt.Errorf("redrive %d: %w", r.StreamSeq, err))
				continue
			}
			subject, h, data = raw.Subject, raw.Header, raw.Data
		}
		ds := c.split(nil, subject, h, data, uint64(r.StreamSeq), 0)
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
	return settled, unread
}

func readMsg(ctx context.Context, stream jetstream.Stream, seq uint64) (*jetstream.RawStreamMsg, error) {
	if stream == nil {
		return nil, errNoMessage
	}
	ctx, cancel := context.WithTimeout(ctx, readTimeout)
	defer cancel()
	raw, err := stream.GetMsg(ctx, seq)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", errNoMessage, err)
	}
	return raw, nil
}

// DeadLetter is an event JetStream stopped redelivering.
type DeadLetter struct {
	StreamSeq  int64     `json:"stream_seq"`
	Subject    string    `json:"subject"`
	Deliveries int32     `json:"deliveries"`
	NotedAt    time.Time `json:"noted_at"`
	// Reason says why it stopped, or that its message was not recorded
	// and who can re-drive it.
	Reason string `json:"reason,omitempty"`
}

// DeadLetters lists the dead letters not yet re-driven.
func (c *Consumer) DeadLetters(ctx context.Context) ([]DeadLetter, error) {
	rows, err := busdb.New(c.pool).DeadLetterPending(ctx)
	if err != nil {
		return nil, fmt.Errorf("read dead letters: %w", err)
	}
	out := make([]DeadLetter, len(rows))
	for i, r := range rows {
		out[i] = DeadLetter{StreamSeq: r.StreamSeq, Subject: r.Subject, Deliveries: r.Deliveries, NotedAt: r.NotedAt, Reason: r.Reason}
	}
	return out, nil
}
