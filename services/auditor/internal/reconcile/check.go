package reconcile

import (
	"fmt"
	"slices"
	"time"

	"github.com/refbus/refbus/pkg/outbox"
	"github.com/refbus/refbus/pkg/receipt"
)

// check judges one request and reports what is wrong with it.
func (st *state) check(f *fact) {
	report := func(k Kind, format string, args ...any) {
		st.sum.Problems[k]++
		fd := Finding{Kind: k, Referral: f.referral, EventID: f.id.String(), From: f.from, To: f.to, Detail: fmt.Sprintf(format, args...)}
		if len(f.seqs) > 0 {
			fd.Seq = f.seqs[0]
		}
		if st.o.Report != nil {
			st.o.Report(fd)
		}
	}
	if f.referral != "" {
		if first, dup := st.seen[f.referral]; dup {
			report(DuplicateReferral, "event %s requested the same referral before", first.id)
		} else {
			st.seen[f.referral] = f.key
		}
	}
	inStream := len(f.seqs) > 0
	if st.stores[f.from] {
		st.checkSender(f, report)
	}
	switch {
	case f.in != nil && !inStream:
		report(MissingFromStream, "%s's inbox received it at seq %d, but the stream does not hold it", f.to, f.in.StreamSeq)
	case f.in != nil && uint64(f.in.StreamSeq) <= st.last && !slices.Contains(f.seqs, uint64(f.in.StreamSeq)):
		report(SeqMismatch, "%s's inbox received it at seq %d, but the stream holds it at %s", f.to, f.in.StreamSeq, seqList(f.seqs))
	case f.in == nil && inStream && st.stores[f.to]:
		receipted := f.out != nil && f.out.ReceiptedAt != nil
		switch {
		case receipted:
			report(MissingFromInbox, "%s's inbox has no record of it, though %s holds %s's receipt (%s)", f.to, f.from, f.to, receiptOutcome(f.out))
		case st.now.Sub(f.stored) > st.o.StuckAfter:
			report(MissingFromInbox, "%s's inbox has no record of it, %s after the stream stored it", f.to, age(st.now.Sub(f.stored)))
		default:
			st.sum.InFlight++
		}
	}
}

// checkSender judges a request against its sender's outbox.
func (st *state) checkSender(f *fact, report func(Kind, string, ...any)) {
	o := f.out
	if o == nil {
		where := "the stream holds it"
		if len(f.seqs) == 0 {
			where = f.to + "'s inbox received it"
		}
		report(NotInOutbox, "%s, but %s's outbox has no record of sending it", where, f.from)
		return
	}
	old := st.now.Sub(o.CreatedAt) > st.o.StuckAfter
	if o.StreamSeq == nil {
		if old {
			report(NotPublished, "%s wrote it %s ago and has not published it", f.from, age(st.now.Sub(o.CreatedAt)))
		} else {
			st.sum.InFlight++
		}
		return
	}
	switch copies := len(f.seqs); {
	case copies == 0:
		if f.in == nil { // else reported once, for the inbox
			report(MissingFromStream, "%s's outbox says it was published at seq %d, but the stream does not hold it", f.from, *o.StreamSeq)
		}
		return
	case uint64(*o.StreamSeq) <= st.last && !slices.Contains(f.seqs, uint64(*o.StreamSeq)):
		// (A later sequence is a republication after the stream was read.)
		report(SeqMismatch, "%s's outbox says it was published at seq %d, but the stream holds it at %s", f.from, *o.StreamSeq, seqList(f.seqs))
	case copies > 1+int(o.Republished):
		report(Duplicated, "the stream holds it %d times (%s), but %s's relay published it again only %d times", copies, seqList(f.seqs), f.from, o.Republished)
	case copies > 1:
		st.sum.Republished++
	}
	switch {
	case o.ReceiptedAt != nil:
		outcome := receiptOutcome(o)
		st.sum.Receipted++
		if outcome == receipt.Applied {
			st.sum.Applied++
		} else {
			st.sum.Rejected++
		}
		if f.in != nil && outcome != f.in.Outcome {
			report(ReceiptMismatch, "%s's receipt says %s, but %s's inbox says %s", f.to, outcome, f.to, f.in.Outcome)
		}
	case old:
		report(Stuck, "published, but no receipt from %s %s after %s wrote it", f.to, age(st.now.Sub(o.CreatedAt)), f.from)
	default:
		st.sum.AwaitingReceipt++
	}
}

// receiptOutcome is the outcome of the receipt o records, "" if none.
func receiptOutcome(o *outbox.Sent) string {
	if o.ReceiptOutcome == nil {
		return ""
	}
	return *o.ReceiptOutcome
}

func seqList(seqs []uint64) string {
	s := ""
	for i, n := range seqs {
		if i > 0 {
			s += ", "
		}
		s += fmt.Sprint(n)
	}
	return "seq " + s
}

// age rounds a duration for a person.
func age(d time.Duration) string {
	switch {
	case d >= time.Hour:
		return d.Round(time.Minute).String()
	case d >= time.Minute:
		return d.Round(time.Second).String()
	}
	return d.Round(time.Millisecond).String()
}
