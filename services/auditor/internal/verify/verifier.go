package verify

import (
	"errors"
	"hash/maphash"
	"strings"

	"github.com/refbus/refbus/pkg/bus"
	"github.com/refbus/refbus/pkg/event"
	"github.com/refbus/refbus/pkg/referral"
)

// Verifier checks messages in stream order and remembers what later
// messages are checked against: one small record per event (for copies and
// receipts) and per referral (its parties, state and sequence numbers).
//
// The republish rule: an event, known by its source and id, may be stored
// more than once only as the relay republishes it when its receipt is late
// (or a receiver sends a receipt again): the same bytes, on the same
// subject, with the relay's Nats-Msg-Id, "<source>#<id>" or
// "<source>#<id>#r<n>". Such a copy is harmless, since receivers dedupe on
// source and id, and is only counted. A copy with other bytes is reported
// as altered, and a copy with the same bytes published any other way as
// replayed.
type Verifier struct {
	reg      *event.Registry
	complete bool
	linked   bool
	seed     maphash.Seed
	report   func(Problem)

	sources map[string]uint32
	names   []string
	events  map[eventKey]eventRecord
	refs    map[string]*refState
	sum     Summary
}

// eventKey names an event: its source, interned, and its id.
type eventKey struct {
	source uint32
	id     [16]byte
}

// eventRecord is what is kept of the first copy of an event.
type eventRecord struct {
	hash uint64
	seq  uint64
	to   uint32
	typ  uint32
}

// refState is what is known of one referral.
type refState struct {
	from, to string
	caseID   string
	state    referral.State
	opened   uint64 // stream sequence of its request; 0 if not seen
	// delivered: its receiver's receipt (applied) or a move of its
	// receiver proved delivery; refused: a receipt said rejected.
	delivered, refused bool
	senders            []senderSeq
}

// Options tune a Verifier.
type Options struct {
	// Complete says that the read sees every event of each referral it
	// sees any of: it starts at the beginning of the stream and filters
	// only by agency, case or referral. Only then are events of unknown
	// referrals and sequences that do not start at 1 problems; otherwise
	// the first event seen of a referral is taken as it comes.
	Complete bool
	// Linked says that, besides, the read selects every referral that
	// a forward links to one it selects: no agency or referral filter
	// hides the other end. Only then is a forward to or from a referral
	// not seen a problem.
	Linked bool
	// Report is called with every problem as it is found (gaps at the
	// end, by Finish).
	Report func(Problem)
}

// New returns a verifier that validates events with reg.
func New(reg *event.Registry, o Options) *Verifier {
	report := o.Report
	if report == nil {
		report = func(Problem) {}
	}
	return &Verifier{
		reg: reg, complete: o.Complete, linked: o.Complete && o.Linked, seed: maphash.MakeSeed(), report: report,
		sources: map[string]uint32{}, events: map[eventKey]eventRecord{}, refs: map[string]*refState{},
		sum: Summary{States: map[string]int{}, Problems: map[Kind]int{}},
	}
}

func (v *Verifier) problem(p Problem) {
	v.sum.Problems[p.Kind]++
	v.report(p)
}

// intern returns a small number for a string that recurs (sources,
// agencies, types), so that records hold no strings.
func (v *Verifier) intern(s string) uint32 {
	if n, ok := v.sources[s]; ok {
		return n
	}
	n := uint32(len(v.names))
	s = strings.Clone(s)
	v.sources[s] = n
	v.names = append(v.names, s)
	return n
}

// apply runs the checks that depend on earlier messages. Messages must come
// in stream order.
func (v *Verifier) apply(in *inspected) {
	if v.sum.Events == 0 {
		v.sum.FirstSeq = in.seq
	}
	v.sum.Events++
	v.sum.LastSeq = in.seq
	for _, p := range in.problems {
		v.problem(p)
	}
	if !in.decoded {
		return
	}
	v.sum.Decoded++
	key := eventKey{source: v.intern(in.source), id: in.idKey}
	rec := eventRecord{hash: in.hash, seq: in.seq, to: v.intern(in.to), typ: v.intern(in.typ)}
	if first, seen := v.events[key]; seen {
		v.copyOf(in, first, rec)
		return
	}
	v.events[key] = rec
	if !in.trusted {
		// A forged event says nothing about the sequence of the agency
		// it names; it is reported, and left out.
		return
	}
	// An invalid event still took its sender's next sequence number.
	v.sequence(in, key.source)
	if !in.valid {
		// Its content is not to be relied on: it is reported, and left
		// out of the referral's state.
		return
	}
	switch {
	case in.typ == bus.ReceiptType:
		v.receipt(in)
	case in.typ == requestedType:
		v.request(in)
	case in.typ == overdueType:
		// A sender's deadline notice: it moves nothing, and its schema
		// and source were checked above.
	case strings.HasPrefix(in.typ, referralPrefix):
		v.move(in)
	}
}

// copyOf checks a second copy of an event against its first.
func (v *Verifier) copyOf(in *inspected, first, rec eventRecord) {
	switch {
	case first.hash != rec.hash:
		v.problem(Problem{Seq: in.seq, Kind: Altered, Detail: "event " + in.id + " from " + in.source +
			" differs from its first copy at seq " + itoa(first.seq) + ": same source and id, other content"})
	case first.to != rec.to:
		v.problem(Problem{Seq: in.seq, Kind: Replayed, Detail: "event " + in.id + " from " + in.source +
			" of seq " + itoa(first.seq) + " is stored again, addressed to " + in.to + " instead of " + v.names[first.to]})
	case !relayMsgID(in.msgID, in.source, in.id):
		v.problem(Problem{Seq: in.seq, Kind: Replayed, Detail: "event " + in.id + " from " + in.source +
			" of seq " + itoa(first.seq) + " is stored again, not by the relay (Nats-Msg-Id " + quote(in.msgID) + ")"})
	default:
		v.sum.Republished++
	}
}

// relayMsgID reports whether id is a Nats-Msg-Id the relay gives the event
// id from source: "<source>#<id>", or "<source>#<id>#r<n>" for its n-th
// republication.
func relayMsgID(msgID, source, id string) bool {
	rest, ok := strings.CutPrefix(msgID, source+"#"+id)
	if !ok {
		return false
	}
	if rest == "" {
		return true
	}
	n, ok := strings.CutPrefix(rest, "#r")
	if !ok || n == "" {
		return false
	}
	for i := 0; i < len(n); i++ {
		if n[i] < '0' || n[i] > '9' {
			return false
		}
	}
	return true
}

const (
	requestedType  = "org.refbus.referral.requested.v1"
	referralPrefix = "org.refbus.referral."
	overdueType    = "org.refbus.referral.overdue.v1"
)

// moveOf maps the event type of each move to the move.
var moveOf = func() map[string]referral.Move {
	m := map[string]referral.Move{}
	for _, mv := range referral.Moves() {
		m[referral.EventType(mv)] = mv
	}
	return m
}()

// request opens a referral.
func (v *Verifier) request(in *inspected) {
	if r := v.refs[in.referral]; r != nil && r.opened != 0 {
		v.problem(Problem{Seq: in.seq, Kind: Reopened, Detail: "referral " + in.referral + " is requested again by event " +
			in.id + "; it was requested at seq " + itoa(r.opened)})
		return
	}
	r := v.ref(in.referral)
	r.from, r.to, r.state, r.opened = v.names[v.intern(in.from)], v.names[v.intern(in.to)], referral.Requested, in.seq
	r.caseID = strings.Clone(in.caseID)
	v.sum.Referrals++
	if p := in.data.ParentID; p != "" {
		parent := v.refs[p]
		switch {
		case parent == nil || parent.opened == 0:
			if v.linked {
				v.problem(Problem{Seq: in.seq, Kind: UnknownReferral, Detail: "referral " + in.referral +
					" is forwarded from referral " + quote(p) + ", which was never requested"})
			}
		case parent.to != in.from:
			v.problem(Problem{Seq: in.seq, Kind: NotParty, Detail: "referral " + in.referral + " is forwarded from referral " +
				p + " by " + in.from + ", but only its receiver " + parent.to + " may forward it"})
		case parent.caseID != in.caseID:
			v.problem(Problem{Seq: in.seq, Kind: CaseMismatch, Detail: "referral " + in.referral + " is forwarded from referral " +
				p + " of case " + parent.caseID + " into case " + quote(in.caseID)})
		}
	}
}

// receipt checks a delivery receipt and, for an applied request, moves the
// referral to received on behalf of the system.
func (v *Verifier) receipt(in *inspected) {
	d := in.data
	answered := eventKey{source: v.intern(bus.Source(in.to)), id: idKey(d.EventID)}
	switch rec, ok := v.events[answered]; {
	case !ok && v.complete:
		v.problem(Problem{Seq: in.seq, Kind: UnknownEvent, Detail: "receipt " + in.id + " from " + in.from +
			" answers event " + quote(d.EventID) + " from " + bus.Source(in.to) + ", which is not in the stream before it"})
	case ok && v.names[rec.typ] != d.EventType:
		v.problem(Problem{Seq: in.seq, Kind: UnknownEvent, Detail: "receipt " + in.id + " from " + in.from +
			" answers event " + d.EventID + " as a " + quote(d.EventType) + ", but it is a " + v.names[rec.typ]})
		return
	}
	if d.EventType != requestedType {
		return
	}
	r := v.known(in)
	if r == nil {
		return
	}
	if in.from != r.to || in.to != r.from {
		v.problem(Problem{Seq: in.seq, Kind: NotParty, Detail: "receipt " + in.id + " for referral " + in.referral +
			" comes from " + in.from + " to " + in.to + ", but the referral went from " + r.from + " to " + r.to})
		return
	}
	if d.Outcome != "applied" {
		r.refused = true
		return
	}
	if r.delivered || r.state != referral.Requested {
		// A receipt later than a move of either party (a cancel, or the
		// receiver's own move that already proved delivery) only
		// confirms what is known.
		r.delivered = true
		return
	}
	r.delivered = true
	v.step(in, r, referral.Receive, referral.System, referral.Input{})
}

// move checks a referral event of a sender or receiver.
func (v *Verifier) move(in *inspected) {
	mv, ok := moveOf[in.typ]
	if !ok {
		v.problem(Problem{Seq: in.seq, Kind: UnknownType, Detail: "event " + in.id + ": " + in.typ + " is no move of the referral state machine"})
		return
	}
	r := v.known(in)
	if r == nil {
		return
	}
	var by referral.Party
	switch {
	case in.from == r.from && in.to == r.to:
		by = referral.Sender
	case in.from == r.to && in.to == r.from:
		by = referral.Receiver
	default:
		v.problem(Problem{Seq: in.seq, Kind: NotParty, Detail: "event " + in.id + " (" + string(mv) + ") for referral " +
			in.referral + " comes from " + in.from + " to " + in.to + ", but the referral went from " + r.from + " to " + r.to})
		return
	}
	if by == referral.Receiver && r.state == referral.Requested {
		// The receiver's move proves delivery even if its receipt comes
		// later, as the agencies themselves take it.
		r.state, r.delivered = referral.Received, true
	}
	d := in.data
	if v.step(in, r, mv, by, referral.Input{
		ReasonCode: referral.ReasonCode(d.ReasonCode), Reason: d.Reason, Outcome: d.Outcome, ToAgency: d.ToAgency, Service: d.Service,
	}) && mv == referral.Forward && v.linked {
		if n := v.refs[d.NewReferralID]; n == nil || n.opened == 0 {
			v.problem(Problem{Seq: in.seq, Kind: UnknownReferral, Detail: "event " + in.id + " forwards referral " + in.referral +
				" to referral " + quote(d.NewReferralID) + ", which was not requested before it"})
		}
	}
}

// step applies a move to r with the referral state machine, and reports
// whether it was legal.
func (v *Verifier) step(in *inspected, r *refState, mv referral.Move, by referral.Party, input referral.Input) bool {
	next, err := referral.Apply(r.state, mv, by, input)
	if err == nil {
		r.state = next
		return true
	}
	kind := IllegalMove
	switch {
	case errors.Is(err, referral.ErrNotParty):
		kind = NotParty
	case errors.Is(err, referral.ErrMissingInput):
		kind = MissingInput
	}
	v.problem(Problem{Seq: in.seq, Kind: kind, Detail: "event " + in.id + " for referral " + in.referral + ": " + err.Error()})
	return false
}

// known returns the referral in is about, or nil, reporting an unknown
// referral when the read sees whole referrals.
func (v *Verifier) known(in *inspected) *refState {
	r := v.refs[in.referral]
	if r != nil && r.opened != 0 {
		if in.caseID != r.caseID {
			v.problem(Problem{Seq: in.seq, Kind: CaseMismatch, Detail: "event " + in.id + " names case " + quote(in.caseID) +
				", but referral " + in.referral + " belongs to case " + r.caseID})
		}
		return r
	}
	if v.complete {
		v.problem(Problem{Seq: in.seq, Kind: UnknownReferral, Detail: "event " + in.id + " (" + in.typ + ") is about referral " +
			quote(in.referral) + ", which was never requested"})
	}
	return nil
}

func (v *Verifier) ref(id string) *refState {
	r := v.refs[id]
	if r == nil {
		r = &refState{}
		v.refs[strings.Clone(id)] = r
	}
	return r
}

// Finish reports the gaps still open and returns the summary.
func (v *Verifier) Finish() Summary {
	v.gaps()
	for _, r := range v.refs {
		if r.opened == 0 {
			continue
		}
		v.sum.States[string(r.state)]++
		if r.refused {
			v.sum.Undelivered++
		}
	}
	return v.sum
}
