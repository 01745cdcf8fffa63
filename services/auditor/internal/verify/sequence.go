package verify

import (
	"cmp"
	"slices"
	"strconv"

	"github.com/refbus/refbus/pkg/receipt"
	"github.com/refbus/refbus/schemas"
)

// senderSeq follows the sequence numbers one source gave the events of one
// referral.
type senderSeq struct {
	source uint32 // plus one: 0 is a free slot
	last   int64
}

// gap is a run of sequence numbers not seen (yet): lo to hi, noticed at the
// message at stream sequence seq.
type gap struct {
	lo, hi int64
	seq    uint64
	pos    uint64 // of the event at seq, to order gaps of one batch
	ref    string
	source uint32
}

// sequence checks the sequence extension of a referral event: per referral
// and source it starts at 1 and goes up by one. A number that skips ahead
// opens a gap, which a late event may still fill (reported as reordered);
// gaps still open at the end are reported by Finish.
func (v *Verifier) sequence(in *inspected, source uint32) {
	if !in.hasSeq {
		if sequenced(in.typ) {
			v.problem(Problem{Seq: in.seq, Kind: MissingSequence, Detail: "event " + in.id + " (" + in.typ + ") of referral " +
				in.referral + " has no sequence extension"})
		}
		return
	}
	r := v.ref(in.referral)
	s := v.sender(r, idKey(in.referral), source)
	sk := senderKey{ref: idKey(in.referral), source: source}
	addGap := func(g gap) {
		g.ref, g.source = in.referral, source
		v.openGaps[sk] = append(v.openGaps[sk], g)
	}
	n := in.sequence
	switch {
	case s.last == 0:
		if n > 1 && v.complete {
			addGap(gap{lo: 1, hi: n - 1, seq: in.seq, pos: in.pos})
		}
		s.last = n
	case n == s.last+1:
		s.last = n
	case n > s.last+1:
		addGap(gap{lo: s.last + 1, hi: n - 1, seq: in.seq, pos: in.pos})
		s.last = n
	case v.fill(sk, n):
		v.problem(Problem{Seq: in.seq, Kind: Reordered, Detail: "event " + in.id + " of referral " + in.referral + " from " + in.source +
			" has sequence " + itoa64(n) + " but comes after sequence " + itoa64(s.last)})
	default:
		v.problem(Problem{Seq: in.seq, Kind: ReusedSequence, Detail: "event " + in.id + " of referral " + in.referral + " from " + in.source +
			" has sequence " + itoa64(n) + ", which an earlier event of it already has"})
	}
}

// sequenced reports whether events of type typ carry the sequence
// extension: a referral's request and its moves do; notices (overdue) and
// receipts do not.
func sequenced(typ string) bool {
	switch typ {
	case schemas.TypeRequested:
		return true
	case receipt.Type:
		return false
	}
	_, ok := schemas.MoveOf(typ)
	return ok
}

// sender returns the sequence record of source in referral r (key k).
func (v *Verifier) sender(r *refState, k [16]byte, source uint32) *senderSeq {
	for i := range r.senders {
		switch r.senders[i].source {
		case source + 1:
			return &r.senders[i]
		case 0:
			r.senders[i].source = source + 1
			return &r.senders[i]
		}
	}
	sk := senderKey{ref: k, source: source}
	s := v.extraSenders[sk]
	if s == nil {
		s = &senderSeq{source: source + 1}
		v.extraSenders[sk] = s
	}
	return s
}

// fill takes n out of the open gaps of sk, reporting whether it was in one.
func (v *Verifier) fill(sk senderKey, n int64) bool {
	gaps := v.openGaps[sk]
	for i, g := range gaps {
		if n < g.lo || n > g.hi {
			continue
		}
		switch {
		case g.lo == g.hi:
			gaps = slices.Delete(gaps, i, i+1)
		case n == g.lo:
			gaps[i].lo++
		case n == g.hi:
			gaps[i].hi--
		default:
			gaps = slices.Insert(gaps, i+1, gap{lo: n + 1, hi: g.hi, seq: g.seq, pos: g.pos, ref: g.ref, source: g.source})
			gaps[i].hi = n - 1
		}
		if len(gaps) == 0 {
			delete(v.openGaps, sk)
		} else {
			v.openGaps[sk] = gaps
		}
		return true
	}
	return false
}

// gaps reports the gaps still open, in stream order.
func (v *Verifier) gaps() {
	var open []gap
	for _, gaps := range v.openGaps {
		open = append(open, gaps...)
	}
	slices.SortFunc(open, func(a, b gap) int {
		return cmp.Or(cmp.Compare(a.pos, b.pos), cmp.Compare(a.lo, b.lo))
	})
	for _, g := range open {
		missing := "sequence " + itoa64(g.lo) + " is missing"
		if g.hi > g.lo {
			missing = "sequences " + itoa64(g.lo) + " to " + itoa64(g.hi) + " are missing"
		}
		v.problem(Problem{Seq: g.seq, Kind: Gap, Detail: "referral " + g.ref + " from " + v.names[g.source] + ": " + missing +
			" before the event here (removed, or never stored)"})
	}
}

func itoa(n uint64) string  { return strconv.FormatUint(n, 10) }
func itoa64(n int64) string { return strconv.FormatInt(n, 10) }
func quote(s string) string { return strconv.Quote(s) }
