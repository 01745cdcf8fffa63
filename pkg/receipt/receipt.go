// Package receipt is the bus's delivery receipt: the event a receiving node
// sends back for every event it applied or rejected, so that its sender
// knows the event was delivered, or refused and why.
//
// The whole protocol is here: a receiving node's consumer builds and sends
// receipts (Sender), and a sending node's consumer decodes the receipts it
// receives (Decode) and records them in its outbox (Record). Receipts go
// straight to the broker, not through the outbox: a receipt lost in a crash
// is healed by the event's sender, which sends the event again for want of
// one, and a repeat is answered with its receipt again.
package receipt

import (
	"context"
	"errors"
	"fmt"
	"sync"

	ce "github.com/cloudevents/sdk-go/v2/event"
	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/refbus/refbus/pkg/bus"
	"github.com/refbus/refbus/pkg/event"
	"github.com/refbus/refbus/pkg/internal/busdb"
)

// Type is the CloudEvents type of a receipt.
const Type = "org.refbus.receipt.v1"

// The outcomes a receipt states.
const (
	Applied  = "applied"
	Rejected = "rejected"
)

// maxReason bounds the reason a receipt carries (the schema allows 2000).
const maxReason = 1000

// Data is the data of a receipt event (receipt.v1.json). Its subject is
// the subject of the event it answers.
type Data struct {
	EventID   string `json:"event_id"`
	EventType string `json:"event_type"`
	Outcome   string `json:"outcome"`
	Reason    string `json:"reason,omitempty"`
	StreamSeq uint64 `json:"stream_seq"`
}

// Receipt is what a receiver said of one event this node sent: delivered,
// or refused and why.
type Receipt struct {
	EventID   uuid.UUID
	EventType string // the type of the event it answers
	Subject   string // that event's CloudEvents subject
	From      string // the node that sent the receipt
	Refused   bool   // false: applied (delivered)
	Reason    string // why it was refused
}

// registry holds the receipt's schema alone: the bus checks and builds
// receipts whatever the application's registry holds.
var registry = sync.OnceValues(func() (*event.Registry, error) { return event.NewRegistry(Schema) })

// Decode checks a receipt event against the receipt's schema and reads
// it. The error is a reason a person can read, for storing the receipt as
// rejected.
func Decode(e *ce.Event) (Receipt, error) {
	if e.Type() != Type {
		return Receipt{}, fmt.Errorf("%s is not a receipt", e.Type())
	}
	from, ok := bus.NodeOf(e.Source())
	if !ok {
		return Receipt{}, fmt.Errorf("receipt source %q is not a node", e.Source())
	}
	reg, err := registry()
	if err != nil {
		return Receipt{}, err
	}
	if err := reg.Validate(e); err != nil {
		return Receipt{}, err
	}
	var d Data
	if err := event.Data(e, &d); err != nil {
		return Receipt{}, err
	}
	id, err := uuid.Parse(d.EventID)
	if err != nil {
		return Receipt{}, fmt.Errorf("receipt for event %q, which is not an event id of this bus (a UUID)", d.EventID)
	}
	return Receipt{EventID: id, EventType: d.EventType, Subject: e.Subject(), From: from,
		Refused: d.Outcome == Rejected, Reason: d.Reason}, nil
}

// DB is where Record writes: a pgx.Tx, or the Later batch of a
// pgbatch.Tx, which sends it with the transaction's COMMIT.
type DB interface {
	Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error)
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
}

// Record records receipts in the outbox of this node, the events' sender:
// the first receipt of each event, from the node the event was addressed
// to, counts; any other changes nothing. It reads nothing back.
func Record(ctx context.Context, db DB, rs []Receipt) error {
	if len(rs) == 0 {
		return nil
	}
	p := busdb.OutboxMarkReceiptedParams{
		EventIds: make([]uuid.UUID, len(rs)),
		Outcomes: make([]string, len(rs)),
		Reasons:  make([]string, len(rs)),
		Froms:    make([]string, len(rs)),
	}
	for i, r := range rs {
		outcome := Applied
		if r.Refused {
			outcome = Rejected
		}
		p.EventIds[i], p.Outcomes[i], p.Reasons[i], p.Froms[i] = r.EventID, outcome, r.Reason, r.From
	}
	if err := busdb.New(db).OutboxMarkReceipted(ctx, p); err != nil {
		return fmt.Errorf("record receipts: %w", err)
	}
	return nil
}

// Answer is what a receiving node did with one event: the receipt to
// send back to its sender.
type Answer struct {
	Event     *ce.Event // the event received
	StreamSeq uint64    // where it is in the stream
	Refused   bool
	Reason    string // why it was refused
}

// Publisher is what a Sender publishes with (a jetstream.JetStream).
type Publisher interface {
	PublishMsgAsync(m *nats.Msg, opts ...jetstream.PublishOpt) (jetstream.PubAckFuture, error)
}

// Sender sends the receipts of one node.
type Sender struct {
	self   string
	js     Publisher
	signer *event.Signer
}

// NewSender returns the sender of node self's receipts. signer, if not
// nil, signs them, chained in the order they are sent: a chain apart from
// the relay's, so it must be a Signer of its own (schemas/SIGNING.md).
func NewSender(self string, js Publisher, signer *event.Signer) *Sender {
	return &Sender{self: self, js: js, signer: signer}
}

// Send sends the receipts of answers. The receipts to one node go in one
// message, a CloudEvents JSON batch when there are several, so that a
// receipt costs the broker a fraction of a message; they are signed in the
// order they are published, so that the chain runs as the stream does.
// Answers to receipts, to events from no node and to this node's own
// events get none. Send does not wait for the broker's acknowledgements (a
// lost receipt is healed by the event's sender); it returns what it could
// not build or publish, having sent the rest.
func (s *Sender) Send(answers []Answer) error {
	byTo := map[string][]*ce.Event{}
	var order []string
	var errs []error
	for _, a := range answers {
		to, r, err := s.build(a)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		if r == nil {
			continue
		}
		if byTo[to] == nil {
			order = append(order, to)
		}
		byTo[to] = append(byTo[to], r)
	}
	for _, to := range order {
		rs := byTo[to]
		if s.signer != nil {
			signed := rs[:0]
			for _, r := range rs {
				if _, err := s.signer.Sign(r); err != nil {
					errs = append(errs, fmt.Errorf("sign receipt %s: %w", r.ID(), err))
					continue
				}
				signed = append(signed, r)
			}
			if rs = signed; len(rs) == 0 {
				continue
			}
		}
		subject := bus.Subject(s.self, to, Type)
		var m *nats.Msg
		var err error
		if len(rs) == 1 {
			m, err = event.NewMsg(subject, rs[0])
		} else {
			m, err = event.NewBatchMsg(subject, rs)
		}
		if err == nil {
			_, err = s.js.PublishMsgAsync(m)
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("send receipts to %s: %w", to, err))
		}
	}
	return errors.Join(errs...)
}

// build makes the receipt of an answer, unsigned, and names the node it
// goes to; a nil event when the answer gets none.
func (s *Sender) build(a Answer) (string, *ce.Event, error) {
	e := a.Event
	if e == nil || e.Type() == Type {
		return "", nil, nil
	}
	to, ok := bus.NodeOf(e.Source())
	if !ok || to == s.self {
		return "", nil, nil
	}
	reg, err := registry()
	if err != nil {
		return "", nil, err
	}
	d := Data{EventID: e.ID(), EventType: e.Type(), Outcome: Applied, StreamSeq: a.StreamSeq}
	if a.Refused {
		d.Outcome, d.Reason = Rejected, event.Truncate(a.Reason, maxReason)
	}
	r, err := reg.New(bus.Source(s.self), Type, e.Subject(), d)
	if err != nil {
		return "", nil, fmt.Errorf("build receipt of event %s: %w", e.ID(), err)
	}
	for _, ext := range []string{event.ExtCaseID, event.ExtTraceparent} {
		if v, ok := e.Extensions()[ext]; ok {
			r.SetExtension(ext, v)
		}
	}
	return to, r, nil
}
