package main

import (
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/nats-io/nats.go"

	"github.com/refbus/refbus/pkg/bus"
	"github.com/refbus/refbus/pkg/event"
	"github.com/refbus/refbus/schemas"
)

// indexOf is the position of the event id in story.
func indexOf(story []spec, id string) int {
	return slices.IndexFunc(story, func(s spec) bool { return s.id == id })
}

// The signed story verifies clean against its trust anchors.
func TestVerifySignedClean(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	for _, m := range f.signAll(f.story()) {
		f.publish(m)
	}
	code, out, errOut := f.audit("verify", "--trust", f.trustFile)
	if code != exitOK || !strings.Contains(out, "verified 14 events, seq 1 to 14: no problems") || !strings.Contains(out, "signatures: checked against 4 trust anchors") {
		t.Fatalf("verify: exit %d\n%s%s", code, out, errOut)
	}
	// A range that starts late sees each chain from where it starts.
	if code, out, _ := f.audit("verify", "--trust", f.trustFile, "--from-seq", "6"); code != exitOK {
		t.Fatalf("verify --from-seq 6: exit %d\n%s", code, out)
	}
}

// Tampering with a signed stream is found, and named, by the signatures
// and the senders' hash chains.
func TestVerifyFindsTamperingSigned(t *testing.T) {
	t.Parallel()
	_, trust := testKeys(t)
	ngoKey := trust["ngo"]
	for _, tc := range []struct {
		name   string
		tamper func(f *fixture, story []spec, msgs []*nats.Msg)
		want   []string // problem lines, in order, each a prefix
	}{{
		name: "changed data",
		tamper: func(f *fixture, story []spec, msgs []*nats.Msg) {
			// Education's "started" (seq 5) gets a note it never wrote,
			// in place of the signed original.
			i := indexOf(story, ev(5))
			for j, m := range msgs {
				if j == i {
					m.Data = []byte(strings.Replace(string(m.Data), `"data":{}`, `"data":{"note":"started late"}`, 1))
				}
				f.publish(m)
			}
		},
		// The signature of a chained event is checked with its run at
		// the end (the move was taken as it came), and the next event
		// follows a hash no event has.
		want: []string{
			"seq 5: bad signature: event " + ev(5) + ": bad signature: signature of node education does not match the event",
			"seq 7: chain broken: event " + ev(7) + " of /agencies/education follows prevhash ",
		},
	}, {
		name: "changed receipt",
		tamper: func(f *fixture, story []spec, msgs []*nats.Msg) {
			// Health's receipt for education's "started" now says it was
			// rejected. Receipts are chained apart, and a break there
			// proves nothing, but the signature is checked.
			i := indexOf(story, ev(6))
			for j, m := range msgs {
				if j == i {
					m.Data = []byte(strings.Replace(string(m.Data), `"outcome":"applied"`, `"outcome":"rejected"`, 1))
				}
				f.publish(m)
			}
		},
		want: []string{
			"seq 6: bad signature: event " + ev(6) + ": bad signature: signature of node health does not match the event",
		},
	}, {
		name: "removed event",
		tamper: func(f *fixture, story []spec, msgs []*nats.Msg) {
			// Education's "started" and its receipt are gone; nothing
			// else is touched.
			for j, m := range msgs {
				if j != indexOf(story, ev(5)) && j != indexOf(story, ev(6)) {
					f.publish(m)
				}
			}
		},
		want: []string{
			"seq 7: illegal move: event " + ev(9),
			"seq 7: sequence gap: referral " + ref(1) + " from /agencies/education: sequence 2 is missing",
			"seq 5: chain broken: event " + ev(7) + " of /agencies/education follows prevhash ",
		},
	}, {
		name: "reordered events",
		tamper: func(f *fixture, story []spec, msgs []*nats.Msg) {
			// Education's request to social (seq 7) and its receipt go
			// before its "started" (seq 5).
			order := slices.Clone(msgs)
			i, j := indexOf(story, ev(5)), indexOf(story, ev(7))
			order[i], order[i+1], order[j], order[j+1] = msgs[j], msgs[j+1], msgs[i], msgs[i+1]
			for _, m := range order {
				f.publish(m)
			}
		},
		want: []string{
			"seq 7: chain reordered: event " + ev(5) + " of /agencies/education comes after event " + ev(7) + " at seq 5, which follows it in the sender's chain",
		},
	}, {
		name: "forged source",
		tamper: func(f *fixture, story []spec, msgs []*nats.Msg) {
			for _, m := range msgs {
				f.publish(m)
			}
			// ngo cancels health's referral in health's name, signed with
			// its own key: the only one it has.
			c := f.build(spec{id: ev(90), from: "health", typ: schemas.TypeCancelled, referral: ref(1), caseID: cs(1), seq: 2, at: 90,
				data: map[string]any{"reason": "no longer needed"}})
			if _, err := f.signers["ngo"].Sign(c); err != nil {
				t.Fatal(err)
			}
			m, _ := event.NewMsg("refbus.ngo.education.referral.cancelled", c)
			f.publish(m)
		},
		want: []string{
			"seq 15: forged source: event " + ev(90) + " says it is from /agencies/health but came on refbus.ngo.education.referral.cancelled, from ngo",
			"seq 15: bad signature: event " + ev(90) + ": bad signature: signer " + ngoKey + " is not the key of node health",
		},
	}, {
		name: "old event replayed",
		tamper: func(f *fixture, story []spec, msgs []*nats.Msg) {
			for _, m := range msgs {
				f.publish(m)
			}
			f.publish(f.copyOf(11, "replay-1"))
		},
		want: []string{"seq 15: replayed: event " + ev(11) + " from /agencies/social of seq 11 is stored again, not by the relay (Nats-Msg-Id \"replay-1\")"},
	}, {
		name: "unsigned event",
		tamper: func(f *fixture, story []spec, msgs []*nats.Msg) {
			for _, m := range msgs {
				f.publish(m)
			}
			m, _ := event.NewMsg(bus.Subject("ngo", "social", schemas.TypeAccepted), f.build(spec{id: ev(91), from: "ngo", typ: schemas.TypeAccepted, referral: ref(3), caseID: cs(2), seq: 2, at: 91, data: map[string]any{}}))
			f.publish(m)
		},
		want: []string{"seq 15: unsigned: event " + ev(91) + ": event is not signed"},
	}} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			f := newFixture(t)
			story := f.story()
			tc.tamper(f, story, f.signAll(story))
			out := f.verifyProblems(t, tc.want, "--trust", f.trustFile)
			if want := fmt.Sprintf("%d problem", len(tc.want)); !strings.Contains(out, want) {
				t.Errorf("summary does not count %s:\n%s", want, out)
			}
		})
	}
}

// With trust anchors, the anchors are the network: an event from a node
// that has none fails its signature check, and one addressed to such a
// node is a bad subject. Without them, the same stream is clean.
func TestVerifyTrustIsTheNetwork(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	for _, m := range f.signAll(f.story()) {
		f.publish(m)
	}
	mayor, err := event.NewSigner(testSeed(t, 50))
	if err != nil {
		t.Fatal(err)
	}
	f.signers["mayor"] = mayor
	req := spec{id: ev(80), from: "mayor", to: "health", typ: schemas.TypeRequested, referral: ref(8), caseID: cs(8), seq: 1, at: 80,
		data: map[string]any{"to_agency": "health", "service": "child_health_check", "note": "n"}}
	f.send(req)
	f.send(receiptOf(ev(81), req, 15, 81))
	f.verifyProblems(t, []string{
		"seq 15: bad signature: event " + ev(80) + ": bad signature: no trust anchor for node mayor",
		"seq 16: bad subject: subject \"refbus.health.mayor.receipt\" names mayor as its receiver, which has no trust anchor: no node of the network",
	}, "--trust", f.trustFile)
	if code, out, _ := f.audit("verify"); code != exitOK {
		t.Fatalf("verify without --trust: exit %d\n%s", code, out)
	}
}

// In a long chain, whose signatures are checked a run at a time, an
// altered event is still found and named.
func TestVerifyLongChainAltered(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	var story []spec
	for k := 1; k <= 150; k++ {
		story = append(story, spec{id: ev(k), from: "health", to: "ngo", typ: schemas.TypeRequested, referral: ref(k), caseID: cs(k), seq: 1, at: k,
			data: map[string]any{"to_agency": "ngo", "service": "shelter", "note": fmt.Sprintf("family %d", k)}})
	}
	msgs := f.signAll(story)
	for i, m := range msgs {
		if i == 99 {
			m.Data = []byte(strings.Replace(string(m.Data), "family 100", "family 101", 1))
		}
		f.publish(m)
	}
	code, out, _ := f.audit("verify", "--trust", f.trustFile)
	want := "seq 100: bad signature: event " + ev(100) + ": bad signature: signature of node health does not match the event\n" +
		"seq 101: chain broken: event " + ev(101) + " of /agencies/health follows prevhash "
	if code != exitProblems || !strings.HasPrefix(out, want) || !strings.Contains(out, ": 2 problems") {
		t.Fatalf("verify: exit %d\n%s\nwant it to start with\n%s", code, out, want)
	}
	if code, out, _ := f.audit("verify", "--trust", f.trustFile, "--to-seq", "99"); code != exitOK {
		t.Fatalf("verify of the events before: exit %d\n%s", code, out)
	}
}
