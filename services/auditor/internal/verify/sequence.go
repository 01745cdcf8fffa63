package verify

import (
	"cmp"
	"slices"
	"strconv"
	"strings"
)

// senderSeq follows the sequence numbers one source gave the events of one
// referral.
type senderSeq struct {
	source uint32
	last   int64
	gaps   []gap
}

// gap is a run of sequence numbers not seen (yet): lo to hi, noticed at the
// message at stream sequence seq.
type gap struct {
	lo, hi int64
	seq    uint64
	ref    string
	source uint32
}

// sequence checks the sequence extension of a referral event: per referral
// and source it starts at 1 and goes up by one. A number that skips ahead
// opens a gap, which a late event may still fill (reported as reordered);
// gaps still open at the end are reported by Finish.
func (v *Verifier) sequence(in *inspected, source uint32) {
	if !in.hasSeq {
		if strings.HasPrefix(in.typ, referralPrefix) {
			v.problem(Problem{Seq: in.seq, Kind: MissingSequence, Detail: "event " + in.id + " (" + in.typ + ") of referral " +
				in.referral + " has no sequence extension"})
		}
		return
	}
	r := v.ref(in.referral)
	s := r.sender(source)
	n := in.sequence
	switch {
	case s.last == 0:
		if n > 1 && v.complete {
			s.gaps = append(s.gaps, gap{lo: 1, hi: n - 1, seq: in.seq})
		}
		s.last = n
	case n == s.last+1:
		s.last = n
	case n > s.last+1:
		s.gaps = append(s.gaps, gap{lo: s.last + 1, hi: n - 1, seq: in.seq})
		s.last = n
	case s.fill(n):
		v.problem(Problem{Seq: in.seq, Kind: Reordered, Detail: "event " + in.id + " of referral " + in.referral + " from " + in.source +
			" has sequence " + itoa64(n) + " but comes after sequence " + itoa64(s.last)})
	default:
		v.problem(Problem{Seq: in.seq, Kind: ReusedSequence, Detail: "event " + in.id + " of referral " + in.referral + " from " + in.source +
			" has sequence " + itoa64(n) + ", which an earlier event of it already has"})
	}
}

func (r *refState) sender(source uint32) *senderSeq {
	for i := range r.senders {
		if r.senders[i].source == source {
			return &r.senders[i]
		}
	}
	r.senders = append(r.senders, senderSeq{source: source})
	return &r.senders[len(r.senders)-1]
}

// fill takes n out of the gaps, reporting whether it was in one.
func (s *senderSeq) fill(n int64) bool {
	for i, g := range s.gaps {
		if n < g.lo || n > g.hi {
			continue
		}
		switch {
		case g.lo == g.hi:
			s.gaps = slices.Delete(s.gaps, i, i+1)
		case n == g.lo:
			s.gaps[i].lo++
		case n == g.hi:
			s.gaps[i].hi--
		default:
			s.gaps = slices.Insert(s.gaps, i+1, gap{lo: n + 1, hi: g.hi, seq: g.seq})
			s.gaps[i].hi = n - 1
		}
		return true
	}
	return false
}

// gaps reports the gaps still open, in stream order.
func (v *Verifier) gaps() {
	var open []gap
	for id, r := range v.refs {
		for _, s := range r.senders {
			for _, g := range s.gaps {
				g.ref, g.source = id, s.source
				open = append(open, g)
			}
		}
	}
	slices.SortFunc(open, func(a, b gap) int {
		return cmp.Or(cmp.Compare(a.seq, b.seq), cmp.Compare(a.lo, b.lo))
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
