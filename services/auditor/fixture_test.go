package main

import (
	"bytes"
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	ce "github.com/cloudevents/sdk-go/v2/event"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/refbus/refbus/pkg/bus"
	"github.com/refbus/refbus/pkg/event"
	"github.com/refbus/refbus/pkg/natstest"
	"github.com/refbus/refbus/pkg/pgtest"
	"github.com/refbus/refbus/pkg/receipt"
	"github.com/refbus/refbus/schemas"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

// fixture is an embedded NATS server with the REFERRALS stream, and events
// built with deterministic ids and times.
type fixture struct {
	t   *testing.T
	srv *natstest.Server
	js  jetstream.JetStream
	reg *event.Registry
	// sent are the messages published, by stream sequence (from 1).
	sent []*nats.Msg
	// signers, if set, sign every event sent as the agencies do: the
	// relay's chain, and the receipts' apart. trustFile holds their keys.
	signers, receiptSigners map[string]*event.Signer
	trustFile               string
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	srv := natstest.New(t)
	js, err := jetstream.New(srv.Connect())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := bus.EnsureStream(t.Context(), js, bus.StreamConfig{}); err != nil {
		t.Fatal(err)
	}
	reg, err := schemas.Registry()
	if err != nil {
		t.Fatal(err)
	}
	return &fixture{t: t, srv: srv, js: js, reg: reg}
}

// Ids of the fixture: ev(n) for events, ref(n) for referrals, cs(n) for
// cases. They are UUIDv7-shaped and fixed, so golden files stay put.
func ev(n int) string  { return fmt.Sprintf("0193a000-0000-7000-8000-%012d", n) }
func ref(n int) string { return fmt.Sprintf("0193a000-0000-7000-9000-%012d", n) }
func cs(n int) string  { return fmt.Sprintf("0193a000-0000-7000-a000-%012d", n) }

// base is the time of the first fixture event; the n-th is n minutes later.
var base = time.Date(2026, 11, 22, 9, 0, 0, 0, time.UTC)

// spec says what one event is.
type spec struct {
	id, from, to, typ, referral, caseID string
	seq                                 int64 // 0: no sequence extension
	at                                  int   // minutes after base
	data                                any
}

// build makes the event of s with the registry, which validates it.
func (f *fixture) build(s spec) *ce.Event {
	f.t.Helper()
	e, err := f.reg.New(bus.Source(s.from), s.typ, s.referral, s.data)
	if err != nil {
		f.t.Fatalf("build %s: %v", s.typ, err)
	}
	e.SetID(s.id)
	e.SetTime(base.Add(time.Duration(s.at) * time.Minute))
	if s.caseID != "" {
		e.SetExtension(event.ExtCaseID, s.caseID)
	}
	if s.seq > 0 {
		event.SetSequence(e, s.seq)
	}
	return e
}

// send publishes s as the relay would and returns its stream sequence.
func (f *fixture) send(s spec) uint64 {
	f.t.Helper()
	return f.publish(f.msg(s))
}

// msg builds the message of s, signed if the fixture signs.
func (f *fixture) msg(s spec) *nats.Msg {
	f.t.Helper()
	m, err := event.NewMsg(bus.Subject(s.from, s.to, s.typ), f.signed(s))
	if err != nil {
		f.t.Fatal(err)
	}
	return m
}

// signed builds the event of s, signed if the fixture signs.
func (f *fixture) signed(s spec) *ce.Event {
	f.t.Helper()
	e := f.build(s)
	signers := f.signers
	if s.typ == receipt.Type {
		signers = f.receiptSigners
	}
	if signer := signers[s.from]; signer != nil {
		if _, err := signer.Sign(e); err != nil {
			f.t.Fatal(err)
		}
	}
	return e
}

// signAll makes each agency sign its events (of fixed keys), and returns
// the messages of specs in order, signed.
func (f *fixture) signAll(specs []spec) []*nats.Msg {
	f.t.Helper()
	f.useKeys()
	out := make([]*nats.Msg, len(specs))
	for i, s := range specs {
		out[i] = f.msg(s)
	}
	return out
}

// useKeys makes each agency sign the events built from now on, with fixed
// keys whose trust anchors are in f.trustFile.
func (f *fixture) useKeys() {
	f.t.Helper()
	seeds, trust := testKeys(f.t)
	f.signers, f.receiptSigners = map[string]*event.Signer{}, map[string]*event.Signer{}
	for a, seed := range seeds {
		for _, m := range []map[string]*event.Signer{f.signers, f.receiptSigners} {
			s, err := event.NewSigner(seed)
			if err != nil {
				f.t.Fatal(err)
			}
			m[a] = s
		}
	}
	f.trustFile = writeTrust(f.t, trust)
}

// publish stores m and returns its stream sequence.
func (f *fixture) publish(m *nats.Msg) uint64 {
	f.t.Helper()
	ack, err := f.js.PublishMsg(f.t.Context(), m)
	if err != nil {
		f.t.Fatalf("publish on %s: %v", m.Subject, err)
	}
	if ack.Duplicate {
		f.t.Fatalf("publish on %s: deduplicated by JetStream", m.Subject)
	}
	f.sent = append(f.sent, m)
	return ack.Sequence
}

// copyOf returns a copy of the message stored at seq, with Nats-Msg-Id set
// to msgID.
func (f *fixture) copyOf(seq uint64, msgID string) *nats.Msg {
	orig := f.sent[seq-1]
	h := nats.Header{}
	for k, v := range orig.Header {
		h[k] = append([]string(nil), v...)
	}
	h.Set(nats.MsgIdHdr, msgID)
	return &nats.Msg{Subject: orig.Subject, Header: h, Data: bytes.Clone(orig.Data)}
}

// receiptOf is the receipt of the event of spec s, stored at seq.
func receiptOf(id string, s spec, seq uint64, at int) spec {
	return spec{id: id, from: s.to, to: s.from, typ: receipt.Type, referral: s.referral, caseID: s.caseID, at: at,
		data: receipt.Data{EventID: s.id, EventType: s.typ, Outcome: receipt.Applied, StreamSeq: seq}}
}

// story is the fixture stream: two cases. In case 1, health refers a child
// to education, which accepts, starts and completes, and refers the family
// on to social; in case 2, social refers a mother to ngo, which declines for
// want of a bed. Every event has its receipt.
func (f *fixture) story() []spec {
	c1, c2 := cs(1), cs(2)
	r1 := spec{id: ev(1), from: "health", to: "education", typ: schemas.TypeRequested, referral: ref(1), caseID: c1, seq: 1, at: 0,
		data: map[string]any{"to_agency": "education", "service": "early_intervention_assessment", "note": "speech delay seen at the 2-year check"}}
	acc := spec{id: ev(3), from: "education", to: "health", typ: schemas.TypeAccepted, referral: ref(1), caseID: c1, seq: 1, at: 10,
		data: map[string]any{"note": "assessment on Monday"}}
	start := spec{id: ev(5), from: "education", to: "health", typ: schemas.TypeStarted, referral: ref(1), caseID: c1, seq: 2, at: 20,
		data: map[string]any{}}
	r2 := spec{id: ev(7), from: "education", to: "social", typ: schemas.TypeRequested, referral: ref(2), caseID: c1, seq: 1, at: 30,
		data: map[string]any{"to_agency": "social", "service": "disability <support> & benefits", "note": "assessment done"}}
	done := spec{id: ev(9), from: "education", to: "health", typ: schemas.TypeCompleted, referral: ref(1), caseID: c1, seq: 3, at: 40,
		data: map[string]any{"outcome": "individual learning plan opened"}}
	r3 := spec{id: ev(11), from: "social", to: "ngo", typ: schemas.TypeRequested, referral: ref(3), caseID: c2, seq: 1, at: 50,
		data: map[string]any{"to_agency": "ngo", "service": "shelter", "note": "mother and two children need a safe place"}}
	dec := spec{id: ev(13), from: "ngo", to: "social", typ: schemas.TypeDeclined, referral: ref(3), caseID: c2, seq: 1, at: 60,
		data: map[string]any{"reason_code": "no_capacity", "reason": "no free bed this week"}}
	// Receipts follow their events; their sequence in the stream is known
	// because the story is published in this order.
	return []spec{
		r1, receiptOf(ev(2), r1, 1, 1),
		acc, receiptOf(ev(4), acc, 3, 11),
		start, receiptOf(ev(6), start, 5, 21),
		r2, receiptOf(ev(8), r2, 7, 31),
		done, receiptOf(ev(10), done, 9, 41),
		r3, receiptOf(ev(12), r3, 11, 51),
		dec, receiptOf(ev(14), dec, 13, 61),
	}
}

// publishAll sends the specs in order.
func (f *fixture) publishAll(specs []spec) {
	f.t.Helper()
	for _, s := range specs {
		f.send(s)
	}
}

// audit runs refbus-audit against the fixture's server and returns its
// exit status, standard output and standard error.
func (f *fixture) audit(args ...string) (int, string, string) {
	f.t.Helper()
	return runAudit(f.t, append([]string{"--nats", f.srv.ClientURL()}, args...)...)
}

func runAudit(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	var stdout, stderr strings.Builder
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	a := &app{stdout: &stdout, stderr: &stderr, registry: schemas.Registry, getenv: func(string) string { return "" }}
	code := a.run(ctx, args)
	return code, stdout.String(), stderr.String()
}

// verifyProblems runs refbus-audit verify with args, expects exit 1, and
// checks that its problem lines begin, in order, with want. It returns the
// output.
func (f *fixture) verifyProblems(t *testing.T, want []string, args ...string) string {
	t.Helper()
	code, out, errOut := f.audit(append([]string{"verify"}, args...)...)
	if code != exitProblems {
		t.Fatalf("verify: exit %d, want 1\n%s%s", code, out, errOut)
	}
	var problems []string
	for _, l := range strings.Split(strings.TrimSpace(out), "\n") {
		if strings.HasPrefix(l, "seq ") {
			problems = append(problems, l)
		}
	}
	if len(problems) != len(want) {
		t.Fatalf("verify found %d problems, want %d:\n%s", len(problems), len(want), out)
	}
	for i, w := range want {
		if !strings.HasPrefix(problems[i], w) {
			t.Errorf("problem %d:\n got %s\nwant %s...", i+1, problems[i], w)
		}
	}
	return out
}
