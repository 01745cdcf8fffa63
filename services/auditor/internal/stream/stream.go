// Package stream reads the REFERRALS stream for an auditor: through ordered
// consumers only, from a stream sequence or a time, without ever
// acknowledging or publishing anything.
//
// Messages are handed over raw; their CloudEvents attributes are scanned
// lazily (Msg.Attrs) because a replay to a table needs only a few of them and
// a full CloudEvents decode would cost more than reading the stream itself.
//
// A batch message (event.BatchContentType: receipts, several to a message)
// is handed over as one Msg per event, in order, all with the batch's
// sequence, so that no caller needs to know batches exist.
package stream

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/refbus/refbus/pkg/bus"
	"github.com/refbus/refbus/pkg/event"
)

// Range bounds a read; every bound is inclusive. Zero fields are open: the
// read starts at the first message of the stream and ends at the last one
// there when it began. Since and Until are compared with the time JetStream
// stored a message, not with the event's own time attribute, which its
// sender chose.
type Range struct {
	FromSeq uint64
	ToSeq   uint64
	Since   time.Time
	Until   time.Time
}

// Open reports whether the range starts at the beginning of the stream, so
// that every event of a referral before its first selected one is seen too.
func (r Range) Open() bool { return r.FromSeq <= 1 && r.Since.IsZero() }

// Check returns an error a person can act on if the range is contradictory.
func (r Range) Check() error {
	switch {
	case r.FromSeq > 0 && !r.Since.IsZero():
		return errors.New("give either --from-seq or --since, not both")
	case r.ToSeq > 0 && !r.Until.IsZero():
		return errors.New("give either --to-seq or --until, not both")
	case r.ToSeq > 0 && r.FromSeq > r.ToSeq:
		return fmt.Errorf("--from-seq %d is after --to-seq %d", r.FromSeq, r.ToSeq)
	case !r.Until.IsZero() && !r.Since.IsZero() && r.Until.Before(r.Since):
		return fmt.Errorf("--since %s is after --until %s", r.Since.Format(time.RFC3339), r.Until.Format(time.RFC3339))
	}
	return nil
}

// Msg is one event of the stream: a message, or one event of a batch
// message. The events of a batch share its Seq, Stored and Subject.
type Msg struct {
	// Seq is the message's stream sequence.
	Seq uint64
	// Stored is when JetStream stored it.
	Stored time.Time
	// Subject is the NATS subject, refbus.<from>.<to>.<event>.
	Subject string
	// Header is the message's, except for an event of a batch: there it
	// is the header the event would have had in a message of its own
	// (see split).
	Header nats.Header
	// Data is the message body: the whole CloudEvent in structured mode,
	// only its data in binary mode, or one event of a batch.
	Data []byte
	// Err, when set, says why the message is no event at all: a batch
	// that does not split. Decoding it must fail; Attrs has Err set too.
	Err error

	attrs   Attrs
	scanned bool
}

// Attrs returns the CloudEvents attributes of m, scanned on first use.
func (m *Msg) Attrs() *Attrs {
	if !m.scanned {
		m.attrs = scan(m.Header, m.Data)
		m.scanned = true
	}
	return &m.attrs
}

// Binary reports whether m is in binary mode, from its headers alone.
func (m *Msg) Binary() bool { return binary(m.Header) }

// Route returns the sending and receiving node named by the subject, or
// empty strings if the subject is not refbus.<from>.<to>.<event>. Unlike
// bus.ParseSubject it does not allocate: it runs for every message.
func (m *Msg) Route() (from, to string) {
	rest, ok := strings.CutPrefix(m.Subject, "refbus.")
	if !ok {
		return "", ""
	}
	i := strings.IndexByte(rest, '.')
	if i <= 0 {
		return "", ""
	}
	j := strings.IndexByte(rest[i+1:], '.')
	if j <= 0 || i+1+j+1 >= len(rest) {
		return "", ""
	}
	return rest[:i], rest[i+1 : i+1+j]
}

// Progress is told about every event read (every event of a batch, with
// the batch's seq); it must be cheap and safe to call from the reading
// goroutine. left is how many matching messages the server still holds
// after this one.
type Progress interface {
	Step(seq, left uint64)
}

// Options say what to read.
type Options struct {
	// Stream is the stream to read (default bus.Stream); its mirror
	// bus.AuditStream holds the same messages at the same sequences.
	Stream string
	Range  Range
	// Subjects are filters on the server side; none reads every subject.
	Subjects []string
	// Progress, if set, is told about every message.
	Progress Progress
	// Buffer bounds the messages the client holds ahead of fn
	// (default 4096).
	Buffer int
}

// ErrNoStream reports that the server has no REFERRALS stream.
var ErrNoStream = errors.New("no " + bus.Stream + " stream on this server")

// Read calls fn with every message in o.Range on o.Subjects, in stream order,
// until the range ends, the messages there when Read began run out, fn
// returns an error (which Read returns), or ctx ends. Messages stored after
// Read began are left out, so a read of a busy stream ends. A batch message
// is read whole or not at all, and fn is called with each of its events.
func Read(ctx context.Context, js jetstream.JetStream, o Options, fn func(*Msg) error) error {
	if err := o.Range.Check(); err != nil {
		return err
	}
	name := o.Stream
	if name == "" {
		name = bus.Stream
	}
	s, err := js.Stream(ctx, name)
	if errors.Is(err, jetstream.ErrStreamNotFound) {
		if name != bus.Stream {
			return fmt.Errorf("no %s stream on this server", name)
		}
		return ErrNoStream
	}
	if err != nil {
		return fmt.Errorf("read stream %s: %w", name, err)
	}
	last := s.CachedInfo().State.LastSeq
	if o.Range.ToSeq > 0 && o.Range.ToSeq < last {
		last = o.Range.ToSeq
	}
	if last == 0 || o.Range.FromSeq > last {
		return nil
	}
	cfg := jetstream.OrderedConsumerConfig{
		FilterSubjects: o.Subjects,
		ReplayPolicy:   jetstream.ReplayInstantPolicy,
		// A server gone for good fails the read (about half a minute of
		// back-off) instead of leaving an auditor waiting forever.
		MaxResetAttempts: 5,
	}
	switch {
	case o.Range.FromSeq > 0:
		cfg.DeliverPolicy = jetstream.DeliverByStartSequencePolicy
		cfg.OptStartSeq = o.Range.FromSeq
	case !o.Range.Since.IsZero():
		since := o.Range.Since
		cfg.DeliverPolicy = jetstream.DeliverByStartTimePolicy
		cfg.OptStartTime = &since
	}
	cons, err := s.OrderedConsumer(ctx, cfg)
	if err != nil {
		return fmt.Errorf("create ordered consumer: %w", err)
	}
	buf := o.Buffer
	if buf == 0 {
		buf = 4096
	}
	it, err := cons.Messages(jetstream.PullMaxMessages(buf))
	if err != nil {
		return fmt.Errorf("read stream %s: %w", name, err)
	}
	defer it.Stop()
	info, err := cons.Info(ctx)
	if err != nil {
		return fmt.Errorf("read stream %s: %w", name, err)
	}
	if info.NumPending == 0 && info.Delivered.Consumer == 0 {
		// Nothing matches; Next would wait for a message forever. (What
		// was delivered already is no longer pending, hence both.)
		return nil
	}
	// Next blocks without a context; stopping the iterator unblocks it.
	stop := context.AfterFunc(ctx, it.Stop)
	defer stop()
	for {
		jm, err := it.Next()
		if err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			return fmt.Errorf("read stream %s: %w", name, err)
		}
		md, err := jm.Metadata()
		if err != nil {
			return fmt.Errorf("read stream %s: %w", name, err)
		}
		seq := md.Sequence.Stream
		if seq > last || (!o.Range.Until.IsZero() && md.Timestamp.After(o.Range.Until)) {
			return nil
		}
		m := &Msg{Seq: seq, Stored: md.Timestamp, Subject: jm.Subject(), Header: jm.Headers(), Data: jm.Data()}
		events := []*Msg{m}
		if event.IsBatch(m.Header) {
			events = split(m)
		}
		for _, e := range events {
			if o.Progress != nil {
				o.Progress.Step(seq, md.NumPending)
			}
			if err := fn(e); err != nil {
				return err
			}
		}
		if md.NumPending == 0 || seq == last {
			return nil
		}
	}
}

// split returns the events of the batch message m, each as if it had come
// in a message of its own: a structured event whose Nats-Msg-Id is the one
// event.NewMsg gives it, "<source>#<id>", when the batch's own id is the
// one event.NewBatchMsg gives its events ("<source>#<id>+<count>" of the
// first), so that a receipt sent again in another batch is a republish
// as it would be alone. A batch whose id is not that of its events was not
// built so; each of its events keeps the batch's id, which verify then
// names when it finds one of them stored twice.
//
// A batch that does not split is returned as it is, with Err set.
func split(m *Msg) []*Msg {
	parts, err := event.SplitBatch(m.Data)
	if err != nil {
		m.Err = err
		m.attrs, m.scanned = Attrs{Err: err}, true
		return []*Msg{m}
	}
	out := make([]*Msg, len(parts))
	for i, p := range parts {
		out[i] = &Msg{Seq: m.Seq, Stored: m.Stored, Subject: m.Subject, Data: p}
	}
	batchID := m.Header.Get(nats.MsgIdHdr)
	first := out[0].Attrs()
	own := first.Err == nil && batchID == msgID(first)+"+"+strconv.Itoa(len(parts))
	for _, e := range out {
		id := batchID
		if a := e.Attrs(); own && a.Err == nil {
			id = msgID(a)
		}
		e.Header = nats.Header{"Content-Type": {event.ContentType}, nats.MsgIdHdr: {id}}
	}
	return out
}

// msgID is event.MsgID of the event a describes.
func msgID(a *Attrs) string { return a.Source() + "#" + a.ID() }
