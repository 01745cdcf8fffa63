package main

import (
	"bytes"
	"context"
	"io"
	"os"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/refbus/refbus/pkg/bus"
	"github.com/refbus/refbus/pkg/event"
	"github.com/refbus/refbus/pkg/natstest"
	"github.com/refbus/refbus/pkg/receipt"
	"github.com/refbus/refbus/schemas"
	"github.com/refbus/refbus/services/auditor/internal/stream"
)

// benchEvents is the size of the benchmark stream; REFBUS_AUDIT_BENCH_EVENTS
// changes it.
func benchEvents() int {
	if n, err := strconv.Atoi(os.Getenv("REFBUS_AUDIT_BENCH_EVENTS")); err == nil && n > 0 {
		return n
	}
	return 200_000
}

// benchStream starts a server holding n events: n/2 referral requests of the
// size the agencies send, each followed by its receipt, published as the
// relay publishes them. It returns the server's URL.
func benchStream(b *testing.B, n int) string {
	b.Helper()
	srv := natstest.New(b)
	nc, err := nats.Connect(srv.ClientURL())
	if err != nil {
		b.Fatal(err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc, jetstream.WithPublishAsyncMaxPending(4096))
	if err != nil {
		b.Fatal(err)
	}
	if _, err := bus.EnsureStream(context.Background(), js, bus.StreamConfig{}); err != nil {
		b.Fatal(err)
	}
	reg, err := schemas.Registry()
	if err != nil {
		b.Fatal(err)
	}
	encode := func(s spec) []byte {
		e, err := reg.New(bus.Source(s.from), s.typ, s.referral, s.data)
		if err != nil {
			b.Fatal(err)
		}
		e.SetID(s.id)
		e.SetExtension(event.ExtCaseID, s.caseID)
		e.SetExtension(event.ExtTraceparent, "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01")
		if s.seq > 0 {
			event.SetSequence(e, s.seq)
		}
		body, err := event.Encode(e)
		if err != nil {
			b.Fatal(err)
		}
		return body
	}
	// Templates whose ids are replaced, byte for byte, for each referral.
	req := spec{id: ev(0), from: "health", to: "education", typ: schemas.TypeRequested, referral: ref(0), caseID: cs(0), seq: 1,
		data: map[string]any{"to_agency": "education", "service": "family_support", "note": "Bench referral: family of four, two children under five; " +
			"the mother asks for an assessment and for help with housing before winter. Caseworker available on weekdays."}}
	reqBody := encode(req)
	rcpBody := encode(receiptOf(ev(999_999_999_999), req, 0, 1))
	ids := func(body []byte, k int) []byte {
		body = bytes.ReplaceAll(body, []byte(ev(0)), []byte(ev(2*k+1)))
		body = bytes.ReplaceAll(body, []byte(ev(999_999_999_999)), []byte(ev(2*k+2)))
		body = bytes.ReplaceAll(body, []byte(ref(0)), []byte(ref(k+1)))
		return bytes.ReplaceAll(body, []byte(cs(0)), []byte(cs(k+1)))
	}
	pub := func(subject, source string, id int, body []byte) {
		h := nats.Header{}
		h.Set(nats.MsgIdHdr, source+"#"+ev(id))
		h.Set("Content-Type", event.ContentType)
		if _, err := js.PublishMsgAsync(&nats.Msg{Subject: subject, Header: h, Data: body}, jetstream.WithStallWait(time.Minute)); err != nil {
			b.Fatal(err)
		}
	}
	// Signed as the agencies sign: health chains its requests, education
	// its receipts.
	seeds, trust := testKeys(b)
	signer := func(a string) *event.Signer {
		s, err := event.NewSigner(seeds[a])
		if err != nil {
			b.Fatal(err)
		}
		return s
	}
	health, education := signer("health"), signer("education")
	sign := func(body []byte, chained bool) []byte {
		e, err := event.Decode(nil, body)
		if err != nil {
			b.Fatal(err)
		}
		if chained {
			_, err = health.Sign(e)
		} else {
			_, err = education.Sign(e)
		}
		if err != nil {
			b.Fatal(err)
		}
		out, err := event.Encode(e)
		if err != nil {
			b.Fatal(err)
		}
		return out
	}
	for k := range n / 2 {
		pub(bus.Subject("health", "education", schemas.TypeRequested), "/agencies/health", 2*k+1, sign(ids(reqBody, k), true))
		pub(bus.Subject("education", "health", receipt.Type), "/agencies/education", 2*k+2, sign(ids(rcpBody, k), false))
	}
	<-js.PublishAsyncComplete()
	benchTrust = writeTrust(b, trust)
	return srv.ClientURL()
}

// benchTrust is the trust file of the bench stream's signers.
var benchTrust string

func benchRun(b *testing.B, n int, args ...string) {
	a := &app{stdout: io.Discard, stderr: io.Discard, registry: schemas.Registry, getenv: func(string) string { return "" }}
	b.ResetTimer()
	cpu := cpuTime(b)
	for b.Loop() {
		if code := a.run(context.Background(), args); code != exitOK {
			b.Fatalf("%v: exit %d", args, code)
		}
	}
	reportRates(b, n, cpu)
}

// cpuTime is the CPU time the process has used, the embedded server's
// included.
func cpuTime(b *testing.B) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// reportRates reports events/s, and the process's CPU time per event since
// cpu: on a machine others share, the CPU an event costs moves less than
// the wall clock.
func reportRates(b *testing.B, n int, cpu time.Duration) {
	events := float64(n) * float64(b.N)
	b.ReportMetric(events/b.Elapsed().Seconds(), "events/s")
	b.ReportMetric(float64((cpuTime(b)-cpu).Microseconds())/events, "cpu-µs/event")
}

// BenchmarkReplay reads the whole stream to a table and to JSON Lines, and,
// as the yardstick measured in the same run on a noisy machine, through the
// same ordered consumer doing nothing with the messages ("read").
func BenchmarkReplay(b *testing.B) {
	n := benchEvents()
	url := benchStream(b, n)
	b.Run("read", func(b *testing.B) {
		nc, err := nats.Connect(url)
		if err != nil {
			b.Fatal(err)
		}
		defer nc.Close()
		js, err := jetstream.New(nc)
		if err != nil {
			b.Fatal(err)
		}
		tuneGC(func(string) string { return "" })
		cpu := cpuTime(b)
		for b.Loop() {
			count := 0
			if err := stream.Read(context.Background(), js, stream.Options{}, func(*stream.Msg) error { count++; return nil }); err != nil || count != n {
				b.Fatalf("read %d of %d: %v", count, n, err)
			}
		}
		reportRates(b, n, cpu)
	})
	for _, format := range []string{"table", "jsonl"} {
		b.Run(format, func(b *testing.B) { benchRun(b, n, "--nats", url, "replay", "--format", format) })
	}
}

// BenchmarkVerify verifies the whole stream.
func BenchmarkVerify(b *testing.B) {
	n := benchEvents()
	url := benchStream(b, n)
	b.Run("signatures", func(b *testing.B) { benchRun(b, n, "--nats", url, "verify", "--trust", benchTrust) })
	b.Run("chains", func(b *testing.B) { benchRun(b, n, "--nats", url, "verify") })
}
