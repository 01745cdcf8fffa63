package verify

import (
	"crypto/sha256"
	"errors"
	"fmt"
	"hash/maphash"

	ce "github.com/cloudevents/sdk-go/v2/event"
	"github.com/google/uuid"
	"github.com/nats-io/nats.go"

	"github.com/refbus/refbus/pkg/bus"
	"github.com/refbus/refbus/pkg/event"
	"github.com/refbus/refbus/pkg/receipt"
	"github.com/refbus/refbus/schemas"
	"github.com/refbus/refbus/services/auditor/internal/stream"
)

// inspected is what one message says on its own: the stateless checks,
// done on many goroutines before the ordered ones.
type inspected struct {
	seq uint64
	// pos is the event's place in the read, from 0, set by apply: events
	// of one batch message share a seq, so ties on it are broken by pos.
	pos      uint64
	problems []Problem
	// decoded is true when the message is a CloudEvent; the fields below
	// are set only then.
	decoded bool
	// valid is true when no stateless check failed; trusted when the
	// event is at least from the node that sent it (its source and
	// subject agree, and with trust anchors the node has one), so its
	// sequence number is its sender's.
	valid    bool
	trusted  bool
	from, to string
	source   string
	id       string
	idKey    [16]byte
	typ      string
	referral string
	caseID   string
	msgID    string
	hash     uint64
	sequence int64
	hasSeq   bool
	// sealed: what the event says about people is sealed (pkg/event's
	// sealed form); only its readable part is checked.
	sealed bool
	data   eventData
	// chained: the event has a prevhash; prev and chainHash are then
	// set. signedOK: its signature was checked and holds, or no trust
	// anchors were given.
	chained         bool
	prev, chainHash hash32
	signedOK        bool
	// signature, if set, is still to check, with the sender's chain.
	signature *event.Signed
}

// eventData is what the ordered checks read of an event's data, decoded
// with the contract's type for its event type: the one field of its type
// is set. Only requests, receipts and moves are decoded, for only their
// data is checked (a request's receiver and parent, what a receipt
// answers, a move's input); notices such as overdue carry none a check
// reads. The fields are pointers so that the batches of inspected events
// stay small.
type eventData struct {
	requested *schemas.Requested
	receipt   *receipt.Data
	move      *schemas.MoveFields
}

// read decodes the data of e, of type typ, into the field of its type. The
// schema has already checked it, so an error means the Go types and the
// schema disagree.
func (d *eventData) read(typ string, e *ce.Event) error {
	switch typ {
	case schemas.TypeRequested:
		d.requested = new(schemas.Requested)
		return event.Data(e, d.requested)
	case receipt.Type:
		d.receipt = new(receipt.Data)
		return event.Data(e, d.receipt)
	}
	if _, ok := schemas.MoveOf(typ); !ok {
		return nil
	}
	m, err := schemas.ReadMove(e)
	d.move = &m
	return err
}

func (in *inspected) problem(k Kind, format string, args ...any) {
	in.problems = append(in.problems, Problem{Seq: in.seq, Kind: k, Detail: fmt.Sprintf(format, args...)})
}

// inspect runs the checks that need only m. It is safe for concurrent use.
func (v *Verifier) inspect(m *stream.Msg) inspected {
	in := inspected{seq: m.Seq, msgID: m.Header.Get(nats.MsgIdHdr)}
	from, to, subjErr := bus.ParseSubject(m.Subject)
	switch {
	case subjErr != nil:
		in.problem(BadSubject, "%v", subjErr)
	case !bus.ValidNode(from):
		in.problem(BadSubject, "subject %q names %q, which is not a well-formed node name", m.Subject, from)
	case !bus.ValidNode(to):
		in.problem(BadSubject, "subject %q names %q, which is not a well-formed node name", m.Subject, to)
	case v.trust != nil && v.trust[to] == "":
		// The trust anchors are the network's nodes. (A sender without
		// one fails its signature check below.)
		in.problem(BadSubject, "subject %q names %s as its receiver, which has no trust anchor: no node of the network", m.Subject, to)
	}
	in.from, in.to = from, to
	if m.Err != nil {
		in.problem(Malformed, "%v", m.Err)
		return in
	}
	ev, err := event.Decode(m.Header, m.Data)
	if err != nil {
		in.problem(Malformed, "%v", err)
		return in
	}
	in.decoded = true
	in.source, in.id, in.typ, in.referral = ev.Source(), ev.ID(), ev.Type(), ev.Subject()
	in.idKey = idKey(in.id)
	body := m.Data
	if m.Binary() {
		// The same event in binary mode differs in headers, not body;
		// its structured form is what is compared.
		if b, err := event.Encode(ev); err == nil {
			body = b
		}
	}
	in.hash = maphash.Bytes(v.seed, body)

	in.caseID = event.CaseID(ev)
	in.trusted = subjErr == nil && ev.Source() == bus.Source(from) && bus.ValidNode(from) && (v.trust == nil || v.trust[from] != "")
	if subjErr == nil {
		if ev.Source() != bus.Source(from) {
			in.problem(Forged, "event %s says it is from %s but came on %s, from %s", in.id, ev.Source(), m.Subject, from)
		}
		if want := bus.Subject(from, to, ev.Type()); want != m.Subject {
			in.problem(Misaddressed, "event %s of type %s came on %s, want %s", in.id, ev.Type(), m.Subject, want)
		}
	}
	if err := v.reg.Validate(ev); err != nil {
		if errors.Is(err, event.ErrUnknownType) {
			in.problem(UnknownType, "event %s: no schema for %s", in.id, ev.Type())
		} else {
			in.problem(Invalid, "event %s: %v", in.id, err)
		}
	}
	in.sealed = v.reg.IsSealed(ev)
	in.signedOK = true
	in.chainFields(ev)
	if v.trust != nil {
		sg, err := event.Prepare(ev, v.trust)
		switch {
		case err != nil:
		case in.chained && v.chained && in.trusted:
			// Left for the chain: a later event's signature vouches for
			// this one (see settle).
			in.signature = sg
		default:
			err = sg.Check()
		}
		if err != nil {
			kind := BadSignature
			if errors.Is(err, event.ErrUnsigned) {
				kind = Unsigned
			}
			in.problem(kind, "event %s: %v", in.id, err)
			in.signedOK = false
		} else if in.typ != receipt.Type && event.PrevHash(ev) == "" {
			in.problem(Unchained, "event %s (%s) is signed but has no prevhash", in.id, in.typ)
		}
	}
	// Extensions() would copy the map of every event.
	if _, err := ev.Context.GetExtension(event.ExtSequence); err == nil {
		in.sequence, in.hasSeq = event.Sequence(ev)
	}
	if len(in.problems) == 0 {
		in.valid = true
		if err := in.data.read(in.typ, ev); err != nil {
			in.problem(Invalid, "event %s: %v", in.id, err)
			in.valid = false
		} else if in.typ == schemas.TypeRequested && in.data.requested.ToAgency != to {
			// Reported, but the request still opens its referral: the
			// subject says where it went.
			in.problem(Misaddressed, "referral %s is for %q in its data but was sent to %s", in.referral, in.data.requested.ToAgency, to)
		}
	}
	return in
}

// idKey packs an event id into 16 bytes: a UUID as it is (every refbus id
// is one), anything else hashed, so the index of events stays small.
func idKey(id string) [16]byte {
	if u, err := uuid.Parse(id); err == nil && len(id) == 36 {
		return u
	}
	sum := sha256.Sum256([]byte("refbus-audit id\x00" + id))
	var k [16]byte
	copy(k[:], sum[:])
	return k
}
