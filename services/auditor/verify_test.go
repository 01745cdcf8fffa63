package main

import (
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/nats-io/nats.go"

	"github.com/refbus/refbus/pkg/bus"
	"github.com/refbus/refbus/pkg/event"
	"github.com/refbus/refbus/pkg/receipt"
	"github.com/refbus/refbus/schemas"
)

func TestVerifyClean(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	f.publishAll(f.story())
	code, out, errOut := f.audit("verify")
	if code != exitOK {
		t.Fatalf("verify: exit %d\n%s%s", code, out, errOut)
	}
	for _, want := range []string{
		"verified 14 events, seq 1 to 14: no problems",
		"referrals: 3 requested; now 1 completed, 1 declined, 1 received",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("verify output lacks %q:\n%s", want, out)
		}
	}
	// Cut before its receipt, the first referral has reached no one yet.
	if _, out, _ := f.audit("verify", "--to-seq", "1"); !strings.Contains(out, "referrals: 1 requested; now 1 not received\n") {
		t.Errorf("verify --to-seq 1:\n%s", out)
	}
	// A range that starts late sees referrals without their start: that
	// is no problem, and neither is a filter on a type.
	for _, args := range [][]string{{"--from-seq", "4"}, {"--type", schemas.TypeAccepted}, {"--agency", "ngo"}, {"--case", cs(1)}} {
		if code, out, _ := f.audit(append([]string{"verify"}, args...)...); code != exitOK {
			t.Errorf("verify %v: exit %d\n%s", args, code, out)
		}
	}
}

// without returns the story without the events of the given ids.
func without(story []spec, ids ...string) []spec {
	return slices.DeleteFunc(slices.Clone(story), func(s spec) bool { return slices.Contains(ids, s.id) })
}

func find(story []spec, id string) spec {
	for _, s := range story {
		if s.id == id {
			return s
		}
	}
	panic("no event " + id)
}

func TestVerifyFindsTampering(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name   string
		tamper func(f *fixture, story []spec)
		want   []string // lines of the output, in order, each a prefix
	}{{
		name: "changed data",
		tamper: func(f *fixture, story []spec) {
			f.publishAll(story)
			// Health's request again, with another note: JetStream would
			// drop the relay's message id as a duplicate, so a new one.
			r1 := find(story, ev(1))
			r1.data = map[string]any{"to_agency": "education", "service": "early_intervention_assessment", "note": "nothing was seen"}
			m, _ := event.NewMsg(bus.Subject("health", "education", schemas.TypeRequested), f.build(r1))
			m.Header.Set(nats.MsgIdHdr, "tampered")
			f.publish(m)
		},
		want: []string{"seq 15: altered: event " + ev(1) + " from /agencies/health differs from its first copy at seq 1"},
	}, {
		name: "removed event",
		tamper: func(f *fixture, story []spec) {
			f.publishAll(without(story, ev(5), ev(6)))
		},
		want: []string{
			"seq 7: illegal move: event " + ev(9) + " for referral " + ref(1) + ": cannot complete a referral that is accepted",
			"seq 7: sequence gap: referral " + ref(1) + " from /agencies/education: sequence 2 is missing",
		},
	}, {
		name: "reordered events",
		tamper: func(f *fixture, story []spec) {
			s := without(story, ev(5), ev(6))
			i := slices.IndexFunc(s, func(s spec) bool { return s.id == ev(11) })
			f.publishAll(slices.Insert(s, i, find(story, ev(5)), find(story, ev(6))))
		},
		want: []string{
			"seq 7: illegal move: event " + ev(9),
			"seq 9: reordered: event " + ev(5) + " of referral " + ref(1) + " from /agencies/education has sequence 2 but comes after sequence 3",
		},
	}, {
		name: "forged source",
		tamper: func(f *fixture, story []spec) {
			f.publishAll(story)
			// ngo cancels health's referral in health's name, on the
			// only subjects ngo may publish on.
			c := f.build(spec{id: ev(90), from: "health", typ: schemas.TypeCancelled, referral: ref(1), caseID: cs(1), seq: 2, at: 90,
				data: map[string]any{"reason": "no longer needed"}})
			m, _ := event.NewMsg("refbus.ngo.education.referral.cancelled", c)
			f.publish(m)
		},
		want: []string{"seq 15: forged source: event " + ev(90) + " says it is from /agencies/health but came on refbus.ngo.education.referral.cancelled, from ngo"},
	}, {
		name: "old event replayed",
		tamper: func(f *fixture, story []spec) {
			f.publishAll(story)
			f.publish(f.copyOf(11, "replay-1"))
		},
		want: []string{"seq 15: replayed: event " + ev(11) + " from /agencies/social of seq 11 is stored again, not by the relay (Nats-Msg-Id \"replay-1\")"},
	}, {
		name: "replayed to another agency",
		tamper: func(f *fixture, story []spec) {
			f.publishAll(story)
			m := f.copyOf(11, "/agencies/social#"+ev(11)+"#r1")
			m.Subject = "refbus.social.health.referral.requested"
			f.publish(m)
		},
		want: []string{
			"seq 15: misaddressed: referral " + ref(3) + " is for \"ngo\"",
			"seq 15: replayed: event " + ev(11) + " from /agencies/social of seq 11 is stored again, addressed to health instead of ngo",
		},
	}, {
		name: "move by the wrong party",
		tamper: func(f *fixture, story []spec) {
			f.publishAll(story)
			f.send(spec{id: ev(91), from: "social", to: "ngo", typ: schemas.TypeAccepted, referral: ref(3), caseID: cs(2), seq: 2, at: 91, data: map[string]any{}})
		},
		want: []string{"seq 15: illegal move: event " + ev(91) + " for referral " + ref(3) + ": cannot accept a referral that is declined"},
	}, {
		name: "events of no request",
		tamper: func(f *fixture, story []spec) {
			f.publishAll(story)
			// A move and a receipt about a referral nobody requested, and a
			// move that names another case than its referral's.
			f.send(spec{id: ev(93), from: "ngo", to: "health", typ: schemas.TypeAccepted, referral: ref(9), caseID: cs(9), seq: 1, at: 93, data: map[string]any{}})
			f.send(receiptOf(ev(94), spec{id: ev(95), from: "health", to: "ngo", typ: schemas.TypeRequested, referral: ref(9), caseID: cs(9)}, 1, 94))
			f.send(spec{id: ev(96), from: "education", to: "social", typ: schemas.TypeCancelled, referral: ref(2), caseID: cs(2), seq: 2, at: 95,
				data: map[string]any{"reason": "family moved"}})
		},
		want: []string{
			"seq 15: unknown referral: event " + ev(93) + " (" + schemas.TypeAccepted + ") is about referral \"" + ref(9) + "\", which was never requested",
			"seq 16: unknown event: receipt " + ev(94) + " from ngo answers event \"" + ev(95) + "\" from /agencies/health, which is not in the stream before it",
			"seq 16: unknown referral: event " + ev(94),
			"seq 17: case mismatch: event " + ev(96) + " names case \"" + cs(2) + "\", but referral " + ref(2) + " belongs to case " + cs(1),
		},
	}, {
		name: "invalid and malformed",
		tamper: func(f *fixture, story []spec) {
			f.publishAll(story[:2])
			f.publish(&nats.Msg{Subject: "refbus.health.ngo.referral.requested", Data: []byte("not an event")})
			e := f.build(spec{id: ev(92), from: "education", typ: schemas.TypeDeclined, referral: ref(1), caseID: cs(1), seq: 1, at: 92,
				data: map[string]any{"reason_code": "no_capacity", "reason": "full"}})
			e.DataEncoded = []byte(`{"reason_code":"sunny"}`)
			m, _ := event.NewMsg(bus.Subject("education", "health", schemas.TypeDeclined), e)
			f.publish(m)
		},
		want: []string{
			"seq 3: malformed: malformed event: body is not JSON",
			"seq 4: invalid: event " + ev(92) + ": invalid event: data does not match schema",
		},
	}} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			f := newFixture(t)
			tc.tamper(f, f.story())
			out := f.verifyProblems(t, tc.want)
			if want := fmt.Sprintf("%d problem", len(tc.want)); !strings.Contains(out, want) {
				t.Errorf("summary does not count %s:\n%s", want, out)
			}
		})
	}
}

// Nodes are data, not a list: without trust anchors, events between any
// well-formed node names verify clean; a subject that names a node with a
// name no node can have is a bad subject.
func TestVerifyNodeNames(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	f.publishAll(f.story())
	req := spec{id: ev(80), from: "ngo_nur", to: "health", typ: schemas.TypeRequested, referral: ref(8), caseID: cs(8), seq: 1, at: 80,
		data: map[string]any{"to_agency": "health", "service": "child_health_check", "note": "n"}}
	f.send(req)
	f.send(receiptOf(ev(81), req, 15, 81))
	code, out, errOut := f.audit("verify")
	if code != exitOK || !strings.Contains(out, "referrals: 4 requested") {
		t.Fatalf("verify: exit %d\n%s%s", code, out, errOut)
	}
	m := f.msg(spec{id: ev(82), from: "health", to: "ngo", typ: schemas.TypeRequested, referral: ref(9), caseID: cs(9), seq: 1, at: 82,
		data: map[string]any{"to_agency": "ngo", "service": "legal_help", "note": "n"}})
	m.Subject = "refbus.health.Ngo.referral.requested"
	f.publish(m)
	f.verifyProblems(t, []string{
		"seq 17: bad subject: subject \"refbus.health.Ngo.referral.requested\" names \"Ngo\", which is not a well-formed node name",
	})
}

// A copy published as the relay republishes an event whose receipt is
// late is no problem, and is counted.
func TestVerifyAcceptsRepublish(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	f.publishAll(f.story())
	f.publish(f.copyOf(1, "/agencies/health#"+ev(1)+"#r1"))
	f.publish(f.copyOf(1, "/agencies/health#"+ev(1)+"#r2"))
	code, out, _ := f.audit("verify")
	if code != exitOK || !strings.Contains(out, "2 republished copies") {
		t.Fatalf("verify: exit %d\n%s", code, out)
	}
}

// A binary-mode message, as a stock CloudEvents SDK client sends it, is an
// event like any other: verified, shown, and written as structured JSON.
func TestBinaryMode(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	story := f.story()
	f.publishAll(story[:1])
	e := f.build(story[1])
	h := nats.Header{"ce-specversion": {"1.0"}, "ce-id": {e.ID()}, "ce-source": {e.Source()}, "ce-type": {e.Type()}, "ce-subject": {e.Subject()},
		"ce-time": {"2026-11-22T09:01:00Z"}, "ce-dataschema": {e.DataSchema()}, "ce-caseid": {cs(1)}, "Content-Type": {"application/json"}}
	h.Set(nats.MsgIdHdr, event.MsgID(e))
	f.publish(&nats.Msg{Subject: bus.Subject("education", "health", receipt.Type), Header: h, Data: e.Data()})
	if code, out, _ := f.audit("verify"); code != exitOK {
		t.Errorf("verify: exit %d\n%s", code, out)
	}
	_, out, _ := f.audit("replay", "--format", "jsonl", "--from-seq", "2")
	if !strings.HasPrefix(out, `{"specversion":"1.0","id":"`+ev(2)+`"`) || !strings.Contains(out, `"caseid":"`+cs(1)+`"`) {
		t.Errorf("jsonl of a binary-mode message: %s", out)
	}
	_, out, _ = f.audit("replay", "--from-seq", "2")
	if !strings.Contains(out, "2026-11-22T09:01:00.000Z  education → health     receipt.v1") {
		t.Errorf("table of a binary-mode message:\n%s", out)
	}
}
