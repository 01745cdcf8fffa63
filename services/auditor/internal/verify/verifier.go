package verify

import (
	"cmp"
	"errors"
	"hash/maphash"
	"slices"
	"strings"

	"github.com/google/uuid"

	"github.com/refbus/refbus/pkg/bus"
	"github.com/refbus/refbus/pkg/event"
	"github.com/refbus/refbus/pkg/receipt"
	"github.com/refbus/refbus/pkg/referral"
	"github.com/refbus/refbus/schemas"
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
	trust    event.Trust
	chained  bool
	complete bool
	linked   bool
	seed     maphash.Seed
	report   func(Problem)

	sources map[string]uint32
	names   []string
	events  map[uint64]eventRecord
	refs    map[[16]byte]*refState
	// caseNames holds the case ids that are not UUIDs, by key.
	caseNames map[[16]byte]string
	// openGaps are the sequence gaps not filled yet, and extraSenders the
	// senders of a referral past its two parties; both are rare.
	openGaps     map[senderKey][]gap
	extraSenders map[senderKey]*senderSeq
	states       []referral.State
	chains       map[uint32]*chain
	sum          Summary
}

// eventKey names an event: its source, interned, and its id.
type eventKey struct {
	source uint32
	id     [16]byte
}

// key packs k into the 64-bit hash the index of events is keyed by: two
// events of a stream share one by chance about once in 10^7 streams of a
// million events.
func (v *Verifier) key(k eventKey) uint64 {
	var b [20]byte
	copy(b[:16], k.id[:])
	b[16], b[17], b[18], b[19] = byte(k.source), byte(k.source>>8), byte(k.source>>16), byte(k.source>>24)
	return maphash.Bytes(v.seed, b[:])
}

// eventRecord is what is kept of the first copy of an event: 16 bytes, for
// it is kept for every event.
type eventRecord struct {
	seq  uint64
	hash uint32 // of its bytes
	to   uint16 // interned, saturated at maxName
	typ  uint16
}

const maxName = 1<<16 - 1

func short(n uint32) uint16 { return uint16(min(n, maxName)) }

// refState is what is known of one referral. It holds no pointers, so
// that the collector need not scan the hundreds of thousands there are.
type refState struct {
	from, to uint32 // interned node names
	caseID   [16]byte
	state    uint8  // index in Verifier.states
	opened   uint64 // stream sequence of its request; 0 if not seen
	// delivered: its receiver's receipt (applied) or a move of its
	// receiver proved delivery; refused: a receipt said rejected.
	delivered, refused bool
	// sealed counts its sealed events; keyDestroyed: its sender said its
	// consent was revoked, so both parties destroyed its data key.
	sealed       uint32
	keyDestroyed bool
	// senders follow the sequence numbers of its two parties (more, in
	// Verifier.extraSenders).
	senders [2]senderSeq
}

// senderKey names the events of one referral from one source.
type senderKey struct {
	ref    [16]byte
	source uint32
}

// Options tune a Verifier.
type Options struct {
	// Complete says that the read sees every event of each referral it
	// sees any of: it starts at the beginning of the stream and filters
	// only by node, case or referral. Only then are events of unknown
	// referrals and sequences that do not start at 1 problems; otherwise
	// the first event seen of a referral is taken as it comes.
	Complete bool
	// Linked says that, besides, the read selects every referral that
	// a forward links to one it selects: no node or referral filter
	// hides the other end. Only then is a forward to or from a referral
	// not seen a problem.
	Linked bool
	// Report is called with every problem as it is found (gaps at the
	// end, by Finish).
	Report func(Problem)
	// Trust are the nodes' public keys; when set, every event's
	// signature is checked, and the nodes that have one are the network:
	// an event from or to another node is a problem.
	Trust event.Trust
	// Chains says that the read selects every message of its range (no
	// filter), so that each sender's hash chain can be checked.
	Chains bool
}

// New returns a verifier that validates events with reg.
func New(reg *event.Registry, o Options) *Verifier {
	report := o.Report
	if report == nil {
		report = func(Problem) {}
	}
	return &Verifier{
		reg: reg, trust: o.Trust, chained: o.Chains, complete: o.Complete, linked: o.Complete && o.Linked, seed: maphash.MakeSeed(), report: report,
		sources: map[string]uint32{}, events: map[uint64]eventRecord{}, refs: map[[16]byte]*refState{}, chains: map[uint32]*chain{},
		caseNames: map[[16]byte]string{}, openGaps: map[senderKey][]gap{}, extraSenders: map[senderKey]*senderSeq{},
		sum: Summary{States: map[string]int{}, Problems: map[Kind]int{}},
	}
}

func (v *Verifier) problem(p Problem) {
	v.sum.Problems[p.Kind]++
	v.report(p)
}

// intern returns a small number for a string that recurs (sources,
// nodes, types), so that records hold no strings.
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
	in.pos = uint64(v.sum.Events)
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
	ek := v.key(key)
	rec := eventRecord{hash: uint32(in.hash), seq: in.seq, to: short(v.intern(in.to)), typ: short(v.intern(in.typ))}
	if first, seen := v.events[ek]; seen {
		v.checkSignature(in)
		v.copyOf(in, first, rec)
		return
	}
	v.events[ek] = rec
	if !in.trusted {
		// A forged event says nothing about the sequence of the node
		// it names; it is reported, and left out.
		v.checkSignature(in)
		return
	}
	if v.chained && in.chained && in.signedOK {
		v.link(in, key.source)
	} else {
		v.checkSignature(in)
	}
	// An invalid event still took its sender's next sequence number.
	v.sequence(in, key.source)
	if !in.valid {
		// Its content is not to be relied on: it is reported, and left
		// out of the referral's state.
		return
	}
	switch in.typ {
	case receipt.Type:
		v.receipt(in)
	case schemas.TypeRequested:
		v.request(in)
	case schemas.TypeConsentRevoked, schemas.TypePersonErased:
		// A notice: it moves nothing, but from it on the referral's data
		// key is destroyed at both its nodes.
		if r := v.known(in); r != nil {
			r.keyDestroyed = true
		}
	case schemas.TypeOverdue, schemas.TypeAddressDisclosed:
		// A notice that a sender's deadline passed, or a shelter's address
		// disclosed to one organization: it moves nothing, and its schema
		// and source were checked above.
	default:
		v.move(in)
	}
	if in.sealed {
		v.sum.Sealed++
		if r := v.refs[idKey(in.referral)]; r != nil {
			r.sealed++
		}
	}
}

// checkSignature checks now a signature left for the chain, for an event
// that will not join one.
func (v *Verifier) checkSignature(in *inspected) {
	if in.signature == nil {
		return
	}
	if err := in.signature.Check(); err != nil {
		v.problem(Problem{Seq: in.seq, Kind: BadSignature, Detail: "event " + in.id + ": " + err.Error()})
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
	case first.seq == in.seq:
		// Two copies in one batch message: no relay or receiver sends
		// an event twice at once, whatever the message's id.
		v.problem(Problem{Seq: in.seq, Kind: Replayed, Detail: "event " + in.id + " from " + in.source +
			" is in the batch message at seq " + itoa(first.seq) + " twice"})
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

// request opens a referral.
func (v *Verifier) request(in *inspected) {
	if r := v.refs[idKey(in.referral)]; r != nil && r.opened != 0 {
		v.problem(Problem{Seq: in.seq, Kind: Reopened, Detail: "referral " + in.referral + " is requested again by event " +
			in.id + "; it was requested at seq " + itoa(r.opened)})
		return
	}
	r := v.ref(in.referral)
	r.from, r.to, r.opened = v.intern(in.from), v.intern(in.to), in.seq
	r.setState(v, referral.Requested)
	r.caseID = v.caseKey(in.caseID)
	v.sum.Referrals++
	if pid := in.data.requested.ParentID; pid != nil {
		p := pid.String()
		parent := v.refs[*pid]
		switch {
		case parent == nil || parent.opened == 0:
			if v.linked {
				v.problem(Problem{Seq: in.seq, Kind: UnknownReferral, Detail: "referral " + in.referral +
					" is forwarded from referral " + quote(p) + ", which was never requested"})
			}
		case v.names[parent.to] != in.from:
			v.problem(Problem{Seq: in.seq, Kind: NotParty, Detail: "referral " + in.referral + " is forwarded from referral " +
				p + " by " + in.from + ", but only its receiver " + v.names[parent.to] + " may forward it"})
		case parent.caseID != v.caseKey(in.caseID):
			v.problem(Problem{Seq: in.seq, Kind: CaseMismatch, Detail: "referral " + in.referral + " is forwarded from referral " +
				p + " of case " + v.caseName(parent.caseID) + " into case " + quote(in.caseID)})
		}
	}
}

// receipt checks a delivery receipt and, for an applied request, moves the
// referral to received on behalf of the system.
func (v *Verifier) receipt(in *inspected) {
	d := in.data.receipt
	answered := v.key(eventKey{source: v.intern(bus.Source(in.to)), id: idKey(d.EventID)})
	switch rec, ok := v.events[answered]; {
	case !ok && v.complete:
		v.problem(Problem{Seq: in.seq, Kind: UnknownEvent, Detail: "receipt " + in.id + " from " + in.from +
			" answers event " + quote(d.EventID) + " from " + bus.Source(in.to) + ", which is not in the stream before it"})
	case ok && v.names[rec.typ] != d.EventType:
		v.problem(Problem{Seq: in.seq, Kind: UnknownEvent, Detail: "receipt " + in.id + " from " + in.from +
			" answers event " + d.EventID + " as a " + quote(d.EventType) + ", but it is a " + v.names[rec.typ]})
		return
	}
	if d.EventType != schemas.TypeRequested {
		return
	}
	r := v.known(in)
	if r == nil {
		return
	}
	if in.from != v.names[r.to] || in.to != v.names[r.from] {
		v.problem(Problem{Seq: in.seq, Kind: NotParty, Detail: "receipt " + in.id + " for referral " + in.referral +
			" comes from " + in.from + " to " + in.to + ", but the referral went from " + v.names[r.from] + " to " + v.names[r.to]})
		return
	}
	if d.Outcome != receipt.Applied {
		r.refused = true
		return
	}
	if r.delivered || r.getState(v) != referral.Requested {
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
	mv, ok := schemas.MoveOf(in.typ)
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
	case in.from == v.names[r.from] && in.to == v.names[r.to]:
		by = referral.Sender
	case in.from == v.names[r.to] && in.to == v.names[r.from]:
		by = referral.Receiver
	default:
		v.problem(Problem{Seq: in.seq, Kind: NotParty, Detail: "event " + in.id + " (" + string(mv) + ") for referral " +
			in.referral + " comes from " + in.from + " to " + in.to + ", but the referral went from " + v.names[r.from] + " to " + v.names[r.to]})
		return
	}
	if by == referral.Receiver && r.getState(v) == referral.Requested {
		// The receiver's move proves delivery even if its receipt comes
		// later, as the nodes themselves take it.
		r.setState(v, referral.Received)
		r.delivered = true
	}
	d := in.data.move
	input := referral.Input{ReasonCode: referral.ReasonCode(d.ReasonCode), Reason: d.Reason, Outcome: d.Outcome, ToAgency: d.ToAgency, Service: d.Service}
	if in.sealed {
		// A reason or outcome travels sealed: the sender's node checked
		// it against the schema, which requires it, before sealing.
		input.Reason, input.Outcome = cmp.Or(input.Reason, "(sealed)"), cmp.Or(input.Outcome, "(sealed)")
	}
	if v.step(in, r, mv, by, input) && mv == referral.Forward && v.linked {
		var n *refState
		newID := ""
		if id := d.NewReferralID; id != nil {
			n, newID = v.refs[*id], id.String()
		}
		if n == nil || n.opened == 0 {
			v.problem(Problem{Seq: in.seq, Kind: UnknownReferral, Detail: "event " + in.id + " forwards referral " + in.referral +
				" to referral " + quote(newID) + ", which was not requested before it"})
		}
	}
}

// step applies a move to r with the referral state machine, and reports
// whether it was legal.
func (v *Verifier) step(in *inspected, r *refState, mv referral.Move, by referral.Party, input referral.Input) bool {
	next, err := referral.Apply(r.getState(v), mv, by, input)
	if err == nil {
		r.setState(v, next)
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
	r := v.refs[idKey(in.referral)]
	if r != nil && r.opened != 0 {
		if v.caseKey(in.caseID) != r.caseID {
			v.problem(Problem{Seq: in.seq, Kind: CaseMismatch, Detail: "event " + in.id + " names case " + quote(in.caseID) +
				", but referral " + in.referral + " belongs to case " + v.caseName(r.caseID)})
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
	k := idKey(id)
	r := v.refs[k]
	if r == nil {
		r = &refState{}
		v.refs[k] = r
	}
	return r
}

// caseKey packs a case id as idKey does, keeping the ids that are not
// UUIDs to name them in messages.
func (v *Verifier) caseKey(id string) [16]byte {
	k := idKey(id)
	if len(id) != 36 || uuid.UUID(k).String() != id {
		if _, ok := v.caseNames[k]; !ok {
			v.caseNames[k] = strings.Clone(id)
		}
	}
	return k
}

func (v *Verifier) caseName(k [16]byte) string {
	if s, ok := v.caseNames[k]; ok {
		return s
	}
	return uuid.UUID(k).String()
}

func (r *refState) getState(v *Verifier) referral.State { return v.states[r.state] }

func (r *refState) setState(v *Verifier, s referral.State) {
	i := slices.Index(v.states, s)
	if i < 0 {
		i = len(v.states)
		v.states = append(v.states, s)
	}
	r.state = uint8(i)
}

// Finish reports the gaps still open and returns the summary.
func (v *Verifier) Finish() Summary {
	v.settleAll()
	v.gaps()
	v.chainBreaks()
	for _, r := range v.refs {
		if r.opened == 0 {
			continue
		}
		v.sum.States[string(r.getState(v))]++
		if r.refused {
			v.sum.Undelivered++
		}
		if r.keyDestroyed {
			v.sum.KeyDestroyed += int(r.sealed)
		}
	}
	return v.sum
}
