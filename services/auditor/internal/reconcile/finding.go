package reconcile

import (
	"fmt"
	"io"
	"strings"
	"time"
)

// Kind names a class of finding; it starts the finding's line.
type Kind string

// The kinds of finding.
const (
	// NotPublished: in the sender's outbox, never published, for longer
	// than StuckAfter.
	NotPublished Kind = "not published"
	// MissingFromStream: the sender's outbox or the receiver's inbox says
	// it went through the stream, which does not hold it.
	MissingFromStream Kind = "missing from stream"
	// MissingFromInbox: in the stream, but not in the receiver's inbox,
	// applied or rejected, though it was receipted or stored longer than
	// StuckAfter ago.
	MissingFromInbox Kind = "missing from inbox"
	// NotInOutbox: in the stream or an inbox, but the sender's outbox has
	// no record of sending it.
	NotInOutbox Kind = "not in outbox"
	// Stuck: published, but no receipt came back within StuckAfter of its
	// writing.
	Stuck Kind = "stuck"
	// Duplicated: the stream holds more copies than the relay published.
	Duplicated Kind = "duplicated"
	// DuplicateReferral: more than one event requests the same referral.
	DuplicateReferral Kind = "duplicated referral"
	// SeqMismatch: an outbox or inbox records a stream sequence at which the
	// stream does not hold the event.
	SeqMismatch Kind = "seq mismatch"
	// ReceiptMismatch: the sender's receipt and the receiver's inbox
	// disagree on whether the request was applied.
	ReceiptMismatch Kind = "receipt mismatch"
)

// Finding is one request that is not where it should be.
type Finding struct {
	Kind     Kind
	Referral string
	EventID  string
	From, To string
	// Seq is the stream sequence of the event's first copy, 0 if the
	// stream holds none.
	Seq    uint64
	Detail string
}

// String renders the finding on one line.
func (f Finding) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s: referral %s (event %s, %s → %s", f.Kind, orUnknown(f.Referral), f.EventID, f.From, orUnknown(f.To))
	if f.Seq > 0 {
		fmt.Fprintf(&b, ", seq %d", f.Seq)
	}
	fmt.Fprintf(&b, "): %s", f.Detail)
	return printable(b.String())
}

// printable keeps control characters, which an event's sender may have put
// in a referral id, from driving the terminal.
func printable(s string) string {
	return strings.Map(func(r rune) rune {
		if r < 0x20 || r == 0x7f {
			return '?'
		}
		return r
	}, s)
}

func orUnknown(s string) string {
	if s == "" {
		return "?"
	}
	return s
}

// Summary counts what a reconciliation saw.
type Summary struct {
	// Requests is the number of distinct referral requests found in the
	// stream and the stores; Copies the messages of them in the stream.
	Requests, Copies int
	// Receipted requests have their receipt, Applied and Rejected by
	// outcome.
	Receipted, Applied, Rejected int
	// AwaitingReceipt and InFlight are requests on their way, younger than
	// StuckAfter; Republished requests were published more than once by
	// the relay, as it does when a receipt is late.
	AwaitingReceipt, InFlight, Republished int
	// Problems counts the findings by kind.
	Problems map[Kind]int
	// Stores are the nodes whose stores were read.
	Stores []string
	// StuckAfter is the threshold the findings were judged by.
	StuckAfter time.Duration
}

// Total is the number of findings.
func (s Summary) Total() int {
	n := 0
	for _, k := range s.Problems {
		n += k
	}
	return n
}

// WriteTo writes the summary for a person.
func (s Summary) WriteTo(w io.Writer) (int64, error) {
	var b strings.Builder
	fmt.Fprintf(&b, "reconciled %d referral requests, the stream with the stores of %s: ", s.Requests, strings.Join(s.Stores, ", "))
	switch n := s.Total(); n {
	case 0:
		b.WriteString("no problems\n")
	case 1:
		b.WriteString("1 problem\n")
	default:
		fmt.Fprintf(&b, "%d problems\n", n)
	}
	fmt.Fprintf(&b, "  receipted %d (applied %d, rejected %d); awaiting receipt %d and in flight %d, younger than %s; republished %d\n",
		s.Receipted, s.Applied, s.Rejected, s.AwaitingReceipt, s.InFlight, s.StuckAfter, s.Republished)
	if len(s.Problems) > 0 {
		b.WriteString("  problems:")
		first := true
		for _, k := range []Kind{NotPublished, MissingFromStream, MissingFromInbox, NotInOutbox, Stuck, Duplicated, DuplicateReferral, SeqMismatch, ReceiptMismatch} {
			if n := s.Problems[k]; n > 0 {
				if !first {
					b.WriteString(",")
				}
				first = false
				fmt.Fprintf(&b, " %s %d", k, n)
			}
		}
		b.WriteString("\n")
	}
	n, err := io.WriteString(w, b.String())
	return int64(n), err
}
