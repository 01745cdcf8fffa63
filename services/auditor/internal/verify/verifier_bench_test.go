package verify

import (
	"bytes"
	"context"
	"fmt"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nkeys"

	"github.com/refbus/refbus/pkg/bus"
	"github.com/refbus/refbus/pkg/event"
	"github.com/refbus/refbus/pkg/receipt"
	"github.com/refbus/refbus/schemas"
	"github.com/refbus/refbus/services/auditor/internal/stream"
)

// benchMsgs are n messages held in memory, half referral requests of the
// size the nodes send, each followed by its receipt, signed and chained as
// the nodes sign them, with their trust anchors.
func benchMsgs(b *testing.B, n int) ([]*stream.Msg, event.Trust) {
	b.Helper()
	reg, err := schemas.Registry()
	if err != nil {
		b.Fatal(err)
	}
	trust := event.Trust{}
	signer := func(node string, seed byte) *event.Signer {
		kp, err := nkeys.FromRawSeed(nkeys.PrefixByteAccount, bytes.Repeat([]byte{seed}, 32))
		if err != nil {
			b.Fatal(err)
		}
		s, _ := kp.Seed()
		sg, err := event.NewSigner(s)
		if err != nil {
			b.Fatal(err)
		}
		trust[node] = sg.PublicKey()
		return sg
	}
	health, education := signer("health", 1), signer("education", 2)
	msg := func(seq uint64, to string, s *event.Signer, source, typ, subject, caseID string, data any, sequence int64) *stream.Msg {
		e, err := reg.New(source, typ, subject, data)
		if err != nil {
			b.Fatal(err)
		}
		e.SetExtension(event.ExtCaseID, caseID)
		if sequence > 0 {
			event.SetSequence(e, sequence)
		}
		if _, err := s.Sign(e); err != nil {
			b.Fatal(err)
		}
		body, err := event.Encode(e)
		if err != nil {
			b.Fatal(err)
		}
		from, _ := bus.NodeOf(source)
		h := nats.Header{"Content-Type": {event.ContentType}, nats.MsgIdHdr: {event.MsgID(e)}}
		return &stream.Msg{Seq: seq, Subject: bus.Subject(from, to, typ), Header: h, Data: body}
	}
	out := make([]*stream.Msg, 0, n)
	for k := range n / 2 {
		ref, caseID := fmt.Sprintf("0193a000-0000-7000-9000-%012d", k), fmt.Sprintf("0193a000-0000-7000-a000-%012d", k)
		req := msg(uint64(2*k+1), "education", health, bus.Source("health"), schemas.TypeRequested, ref, caseID,
			map[string]any{"to_agency": "education", "service": "family_support", "note": "Bench referral: family of four, two children under five; " +
				"the mother asks for an assessment and for help with housing before winter. Caseworker available on weekdays."}, 1)
		id := req.Attrs().ID()
		out = append(out, req, msg(uint64(2*k+2), "health", education, bus.Source("education"), receipt.Type, ref, caseID,
			map[string]any{"event_id": id, "event_type": schemas.TypeRequested, "outcome": "applied", "stream_seq": 2*k + 1}, 0))
	}
	return out, trust
}

// BenchmarkVerifier verifies messages held in memory: decoding, schemas,
// signatures and history, without NATS, so that it measures the verifier
// alone (refbus-audit runs it at GOGC=400: set it to compare).
func BenchmarkVerifier(b *testing.B) {
	const n = 20_000
	msgs, trust := benchMsgs(b, n)
	for _, tc := range []struct {
		name  string
		trust event.Trust
	}{{"signatures", trust}, {"chains", nil}} {
		b.Run(tc.name, func(b *testing.B) {
			reg, err := schemas.Registry()
			if err != nil {
				b.Fatal(err)
			}
			var ru0 syscall.Rusage
			_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru0)
			for b.Loop() {
				var first *Problem
				v := New(reg, Options{Complete: true, Linked: true, Chains: true, Trust: tc.trust, Report: func(p Problem) {
					if first == nil {
						first = &p
					}
				}})
				err := v.Run(context.Background(), func(fn func(*stream.Msg) error) error {
					for _, m := range msgs {
						if err := fn(m); err != nil {
							return err
						}
					}
					return nil
				}, 0)
				if err != nil {
					b.Fatal(err)
				}
				if sum := v.Finish(); sum.Total() > 0 || sum.Events != n {
					b.Fatalf("%d events, %d problems, the first: %v", sum.Events, sum.Total(), first)
				}
			}
			var ru1 syscall.Rusage
			_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru1)
			events := float64(n) * float64(b.N)
			b.ReportMetric(events/b.Elapsed().Seconds(), "events/s")
			// The CPU an event costs moves less than the wall clock on a
			// machine others share.
			cpu := time.Duration(ru1.Utime.Nano() + ru1.Stime.Nano() - ru0.Utime.Nano() - ru0.Stime.Nano())
			b.ReportMetric(float64(cpu.Nanoseconds())/1e3/events, "cpu-µs/event")
		})
	}
}
