// Package verify checks from the REFERRALS stream alone that its history is
// whole and untouched: every message is a valid CloudEvent sent by the
// node its subject names, no event was changed or replayed, no event of a
// referral is missing or out of order, and every referral moved only as the
// referral state machine allows.
package verify

import (
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"
)

// Kind names a class of problem; it is the second field of a problem line.
type Kind string

// The kinds of problem, roughly in the order they are checked.
const (
	// Malformed: the message does not decode as a CloudEvent.
	Malformed Kind = "malformed"
	// BadSubject: the subject is not refbus.<from>.<to>.<event> of
	// well-formed node names, or, with trust anchors, names a receiver
	// that has none (the anchors are the network's nodes).
	BadSubject Kind = "bad subject"
	// Forged: the event's source is not the sender its subject names.
	Forged Kind = "forged source"
	// Misaddressed: the subject does not match the event's type, or the
	// data names another receiver than the subject.
	Misaddressed Kind = "misaddressed"
	// UnknownType: no JSON Schema describes the event's type.
	UnknownType Kind = "unknown type"
	// Invalid: the envelope or the data does not match the schema.
	Invalid Kind = "invalid"
	// Altered: an event (source and id) is stored again with other bytes.
	Altered Kind = "altered"
	// Replayed: an event is stored again with the same bytes, but not as
	// the relay republishes (see Verifier).
	Replayed Kind = "replayed"
	// MissingSequence: a referral event has no sequence extension.
	MissingSequence Kind = "missing sequence"
	// Gap: sequence numbers of a referral from one sender are missing: an
	// event was removed or never stored.
	Gap Kind = "sequence gap"
	// Reordered: a sequence number arrived after a higher one.
	Reordered Kind = "reordered"
	// ReusedSequence: two different events carry the same sequence number.
	ReusedSequence Kind = "sequence reused"
	// Reopened: a referral is requested a second time.
	Reopened Kind = "reopened"
	// CaseMismatch: an event names another case than its referral's.
	CaseMismatch Kind = "case mismatch"
	// UnknownReferral: an event about a referral that was never requested.
	UnknownReferral Kind = "unknown referral"
	// UnknownEvent: a receipt for an event that is not in the stream
	// before it, or that is of another type than the receipt says.
	UnknownEvent Kind = "unknown event"
	// NotParty: an event from a node that is neither the referral's
	// sender nor its receiver, or a move its party may not make.
	NotParty Kind = "not a party"
	// IllegalMove: a move the referral's state does not allow.
	IllegalMove Kind = "illegal move"
	// MissingInput: a move without the reason, outcome or target it needs.
	MissingInput Kind = "missing input"
	// Unsigned: an event without a signature, when trust anchors are set.
	Unsigned Kind = "unsigned"
	// BadSignature: a signature that is not its sender's or does not
	// match the event (changed after signing), or a malformed prevhash.
	BadSignature Kind = "bad signature"
	// Unchained: a signed event other than a receipt without prevhash.
	Unchained Kind = "unchained"
	// ChainBroken: an event follows a prevhash that no event of its sender
	// in the stream has: the one before it was removed or altered.
	ChainBroken Kind = "chain broken"
	// ChainReordered: an event comes after one that follows it in its
	// sender's chain.
	ChainReordered Kind = "chain reordered"
	// ChainRestarted: a sender's chain starts again from zero.
	ChainRestarted Kind = "chain restarted"
)

// Problem is one thing wrong with the stream.
type Problem struct {
	// Seq is the stream sequence of the message the problem was found at;
	// the events of a batch message share theirs.
	Seq    uint64
	Kind   Kind
	Detail string
}

// String renders the problem on one line: "seq 42: altered: ...".
func (p Problem) String() string {
	return fmt.Sprintf("seq %d: %s: %s", p.Seq, p.Kind, oneLine(p.Detail))
}

// oneLine keeps a detail quoted from an event on its line, and keeps
// control characters an event's sender chose from driving the terminal.
func oneLine(s string) string {
	clean := true
	for i := 0; i < len(s); i++ {
		if s[i] < 0x20 || s[i] == 0x7f {
			clean = false
			break
		}
	}
	if clean {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c == 0x7f {
			fmt.Fprintf(&b, `\x%02x`, c)
		} else {
			b.WriteByte(c)
		}
	}
	return b.String()
}

// Summary counts what a verification saw.
type Summary struct {
	// Events is the number of events checked, each event of a batch
	// message counted; FirstSeq and LastSeq bound their messages.
	Events            int
	FirstSeq, LastSeq uint64
	// Decoded events read as CloudEvents; Republished of them were
	// copies the relay published again.
	Decoded, Republished int
	// Sealed events carry what they say about people sealed to their
	// receiver: only their readable part was checked (with their
	// signature and chain, which cover the sealed form). KeyDestroyed of
	// them are about referrals whose data key was destroyed (consent
	// revoked): no one can open them any more, and that is no problem.
	Sealed, KeyDestroyed int
	// Referrals opened in the range, and how many ended up in each state.
	Referrals int
	States    map[string]int
	// Undelivered referrals were refused by their receiver on delivery.
	Undelivered int
	// Problems counts the problems by kind.
	Problems map[Kind]int
}

// Total is the number of problems found.
func (s Summary) Total() int {
	n := 0
	for _, k := range s.Problems {
		n += k
	}
	return n
}

// WriteTo writes the summary for a person, a few lines.
func (s Summary) WriteTo(w io.Writer) (int64, error) {
	var b strings.Builder
	if s.Events == 0 {
		b.WriteString("verified 0 events: nothing in the range\n")
	} else {
		fmt.Fprintf(&b, "verified %d events, seq %d to %d: ", s.Events, s.FirstSeq, s.LastSeq)
		switch n := s.Total(); n {
		case 0:
			b.WriteString("no problems\n")
		case 1:
			b.WriteString("1 problem\n")
		default:
			fmt.Fprintf(&b, "%d problems\n", n)
		}
	}
	fmt.Fprintf(&b, "  events: %d CloudEvents, %d republished copies\n", s.Decoded, s.Republished)
	if s.Sealed > 0 {
		fmt.Fprintf(&b, "  sealed: %d events (readable part checked), %d of them sealed, key destroyed\n", s.Sealed, s.KeyDestroyed)
	}
	fmt.Fprintf(&b, "  referrals: %d requested", s.Referrals)
	for i, st := range slices.Sorted(maps.Keys(s.States)) {
		sep := ", "
		if i == 0 {
			sep = "; now "
		}
		name := strings.ReplaceAll(st, "_", " ")
		if st == "requested" {
			// The question an auditor asks first: did it reach anyone?
			name = "not received"
		}
		fmt.Fprintf(&b, "%s%d %s", sep, s.States[st], name)
		if st == "requested" && s.Undelivered > 0 {
			fmt.Fprintf(&b, " (%d refused on delivery)", s.Undelivered)
		}
	}
	b.WriteString("\n")
	if len(s.Problems) > 0 {
		b.WriteString("  problems:")
		for i, k := range slices.Sorted(maps.Keys(s.Problems)) {
			if i > 0 {
				b.WriteString(",")
			}
			fmt.Fprintf(&b, " %s %d", k, s.Problems[k])
		}
		b.WriteString("\n")
	}
	n, err := io.WriteString(w, b.String())
	return int64(n), err
}
