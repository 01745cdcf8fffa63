package verify

import (
	"cmp"
	"encoding/hex"
	"maps"
	"slices"

	ce "github.com/cloudevents/sdk-go/v2/event"

	"github.com/refbus/refbus/pkg/event"
	"github.com/refbus/refbus/pkg/receipt"
)

// hash32 is a chain hash (schemas/SIGNING.md), as bytes.
type hash32 [32]byte

var genesis hash32 // event.GenesisHash: all zeros

// receiptChain marks the key of a sender's chain of receipts, apart from
// its other events (schemas/SIGNING.md).
const receiptChain = 1 << 31

// segment is a run of one sender's chained events that link up, each
// naming the one before it in prevhash.
type segment struct {
	prev    hash32 // what its first event follows
	tail    hash32 // chain hash of its last event
	first   uint64 // stream sequence of its first event
	pos     uint64 // and its place in the read (inspected.pos)
	firstID string
	// pending are the signatures of its events not yet vouched for, in
	// chain order (see settle).
	pending []pendingSig
}

// pendingSig is a chained event's signature not checked yet.
type pendingSig struct {
	seq uint64
	id  string
	sig *event.Signed
}

// settleAfter is how many signatures a run of a chain gathers before its
// last is checked: the last vouches for the others, whose contents,
// signatures included, its prevhash chain fixes. Each costs about 50 µs
// of CPU; a run that fails is checked event by event.
const settleAfter = 64

// settle checks the pending signatures of s: only the last, unless it
// fails. The pending events precede the last in the chain, linked by
// their hashes, so the sender signed them all.
func (v *Verifier) settle(s *segment) {
	if len(s.pending) == 0 {
		return
	}
	if s.pending[len(s.pending)-1].sig.Check() != nil {
		for _, p := range s.pending {
			if err := p.sig.Check(); err != nil {
				v.problem(Problem{Seq: p.seq, Kind: BadSignature, Detail: "event " + p.id + ": " + err.Error()})
			}
		}
	}
	s.pending = s.pending[:0]
}

// chain is what is known of one sender's hash chain: its runs, indexed by
// the hash each ends with and the hash each starts after. An intact chain
// is one run, so this stays small however long the stream: it grows only
// with the breaks.
type chain struct {
	byTail map[hash32]*segment
	byPrev map[hash32]*segment
}

func (v *Verifier) chainOf(source uint32) *chain {
	c := v.chains[source]
	if c == nil {
		c = &chain{byTail: map[hash32]*segment{}, byPrev: map[hash32]*segment{}}
		v.chains[source] = c
	}
	return c
}

// link places a chained event in its sender's chain. A run that its event
// extends grows; an event that comes before a run it precedes came late
// (reordered); anything else starts a run, which Finish reports unless it
// is the chain's start.
func (v *Verifier) link(in *inspected, source uint32) {
	key := source
	if in.typ == receipt.Type {
		key |= receiptChain
	}
	c := v.chainOf(key)
	a, b := c.byTail[in.prev], c.byPrev[in.chainHash]
	if b != nil && key == source {
		v.problem(Problem{Seq: in.seq, Kind: ChainReordered, Detail: "event " + in.id + " of " + v.names[source] +
			" comes after event " + b.firstID + " at seq " + itoa(b.first) + ", which follows it in the sender's chain"})
		delete(c.byPrev, b.prev)
	}
	var p []pendingSig
	if in.signature != nil {
		p = []pendingSig{{seq: in.seq, id: in.id, sig: in.signature}}
	}
	var s *segment
	switch {
	case a != nil && b != nil:
		// The late event joins two runs.
		delete(c.byTail, a.tail)
		a.tail = b.tail
		c.byTail[a.tail] = a
		a.pending = append(append(a.pending, p...), b.pending...)
		s = a
	case a != nil:
		delete(c.byTail, a.tail)
		a.tail = in.chainHash
		c.byTail[a.tail] = a
		a.pending = append(a.pending, p...)
		s = a
	case b != nil:
		b.prev, b.first, b.pos, b.firstID = in.prev, in.seq, in.pos, in.id
		c.byPrev[b.prev] = b
		b.pending = append(p, b.pending...)
		s = b
	default:
		s = &segment{prev: in.prev, tail: in.chainHash, first: in.seq, pos: in.pos, firstID: in.id, pending: p}
		c.byTail[s.tail], c.byPrev[s.prev] = s, s
	}
	if len(s.pending) >= settleAfter {
		v.settle(s)
	}
}

// settleAll checks the signatures still pending at the end, in stream
// order of the runs.
func (v *Verifier) settleAll() {
	var segs []*segment
	for _, c := range v.chains {
		segs = slices.AppendSeq(segs, maps.Values(c.byPrev))
	}
	slices.SortFunc(segs, func(a, b *segment) int { return cmp.Compare(a.pos, b.pos) })
	for _, s := range segs {
		v.settle(s)
	}
}

// chainBreaks reports, per sender, every run of its chain but the first
// that does not start after an event in the stream: the event before it
// was removed, or altered so that its hash changed. The first run may start
// anywhere when the read does not start at the stream's beginning.
func (v *Verifier) chainBreaks() {
	type found struct {
		pos uint64
		p   Problem
	}
	var out []found
	for source, c := range v.chains {
		if source&receiptChain != 0 {
			// Receipts are chained only so that their signatures are
			// checked a run at a time: a receiver's chain starts again
			// whenever it restarts and skips a receipt lost on its way,
			// so breaks prove nothing there.
			continue
		}
		segs := slices.SortedFunc(maps.Values(c.byPrev), func(a, b *segment) int { return cmp.Compare(a.pos, b.pos) })
		for i, s := range segs {
			if s.prev == genesis {
				if i > 0 {
					out = append(out, found{s.pos, Problem{Seq: s.first, Kind: ChainRestarted, Detail: "event " + s.firstID + " of " + v.names[source] +
						" starts its sender's chain again (prevhash zero) after seq " + itoa(segs[0].first)}})
				}
				continue
			}
			if i == 0 && !(v.complete && v.sum.FirstSeq == 1) {
				continue
			}
			out = append(out, found{s.pos, Problem{Seq: s.first, Kind: ChainBroken, Detail: "event " + s.firstID + " of " + v.names[source] +
				" follows prevhash " + hex.EncodeToString(s.prev[:6]) + "…, which no event in the stream has: the sender's event before it was removed or altered"}})
		}
	}
	slices.SortFunc(out, func(a, b found) int { return cmp.Compare(a.pos, b.pos) })
	for _, f := range out {
		v.problem(f.p)
	}
}

// chainFields reads the chain attributes of ev into in: prevhash, and the
// chain hash computed from the event.
func (in *inspected) chainFields(e *ce.Event) {
	p := event.PrevHash(e)
	if p == "" {
		return
	}
	if len(p) != 64 {
		in.problem(BadSignature, "event %s: prevhash %q is not a SHA-256 in hex", in.id, p)
		return
	}
	if _, err := hex.Decode(in.prev[:], []byte(p)); err != nil {
		in.problem(BadSignature, "event %s: prevhash %q is not a SHA-256 in hex", in.id, p)
		return
	}
	h, err := event.ChainHash(e)
	if err != nil {
		in.problem(BadSignature, "event %s: %v", in.id, err)
		return
	}
	if _, err := hex.Decode(in.chainHash[:], []byte(h)); err != nil {
		return
	}
	in.chained = true
}
