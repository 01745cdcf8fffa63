package main

import (
	"bytes"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	ce "github.com/cloudevents/sdk-go/v2/event"
	"github.com/nats-io/nats.go"

	"github.com/refbus/refbus/pkg/bus"
	"github.com/refbus/refbus/pkg/event"
	"github.com/refbus/refbus/pkg/receipt"
	"github.com/refbus/refbus/schemas"
	"github.com/refbus/refbus/services/auditor/internal/render"
)

// batchedStory is the story as receivers that batch their receipts send
// it: one message per list of event numbers (ev(n)), a list of receipts
// being one batch message, even of one. By stream sequence:
//
//	1 ev1  2 ev3  3 ev5  4 [ev2]  5 ev7  6 ev9  7 [ev4 ev6 ev10]
//	8 [ev8]  9 ev11  10 ev13  11 [ev12]  12 [ev14]
var batchedStory = [][]int{{1}, {3}, {5}, {2}, {7}, {9}, {4, 6, 10}, {8}, {11}, {13}, {12}, {14}}

// batchMsgs builds the messages of groups (see batchedStory) from the
// events of story, signed in story order if the fixture signs, as each
// sender signs them.
func (f *fixture) batchMsgs(story []spec, groups [][]int) []*nats.Msg {
	f.t.Helper()
	evs := map[string]*ce.Event{}
	for _, s := range story {
		evs[s.id] = f.signed(s)
	}
	out := make([]*nats.Msg, 0, len(groups))
	for _, g := range groups {
		s := find(story, ev(g[0]))
		subject := bus.Subject(s.from, s.to, s.typ)
		var m *nats.Msg
		var err error
		if s.typ == receipt.Type {
			list := make([]*ce.Event, len(g))
			for i, n := range g {
				list[i] = evs[ev(n)]
			}
			m, err = event.NewBatchMsg(subject, list)
		} else {
			m, err = event.NewMsg(subject, evs[s.id])
		}
		if err != nil {
			f.t.Fatal(err)
		}
		out = append(out, m)
	}
	return out
}

func (f *fixture) publishMsgs(msgs []*nats.Msg) {
	f.t.Helper()
	for _, m := range msgs {
		f.publish(m)
	}
}

// batchOf builds a batch message of the events of specs, on the subject of
// the first.
func (f *fixture) batchOf(specs ...spec) *nats.Msg {
	f.t.Helper()
	evs := make([]*ce.Event, len(specs))
	for i, s := range specs {
		evs[i] = f.signed(s)
	}
	m, err := event.NewBatchMsg(bus.Subject(specs[0].from, specs[0].to, specs[0].typ), evs)
	if err != nil {
		f.t.Fatal(err)
	}
	return m
}

// Replay shows every receipt of a batch message on its own, with the
// message's sequence, in every format.
func TestReplayBatches(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	f.publishMsgs(f.batchMsgs(f.story(), batchedStory))

	for _, tc := range []struct {
		args []string
		want string
	}{
		{nil, "1 2 3 4 5 6 7 7 7 8 9 10 11 12"},
		{[]string{"--referral", ref(1)}, "1 2 3 4 6 7 7 7"},
		{[]string{"--from-seq", "7", "--to-seq", "7"}, "7 7 7"},
		{[]string{"--type", receipt.Type}, "4 7 7 7 8 11 12"},
		{[]string{"--agency", "ngo"}, "9 10 11 12"},
	} {
		f.replaySeqs(t, tc.args, tc.want)
	}
	if _, out, _ := f.audit("replay", "--from-seq", "7", "--to-seq", "7"); strings.Count(out, "health → education     receipt.v1") != 3 {
		t.Errorf("table of seq 7 does not show its three receipts:\n%s", out)
	}

	// JSON Lines: the same events, byte for byte, as the stream without
	// batches (the golden file), in the batches' order.
	code, out, errOut := f.audit("replay", "--format", "jsonl")
	if code != exitOK {
		t.Fatalf("replay --format jsonl: exit %d: %s", code, errOut)
	}
	golden, err := os.ReadFile(filepath.Join("testdata", "replay.jsonl.golden"))
	if err != nil {
		t.Fatal(err)
	}
	got, want := strings.Split(strings.TrimSpace(out), "\n"), strings.Split(strings.TrimSpace(string(golden)), "\n")
	if len(got) != 14 {
		t.Fatalf("jsonl has %d lines, want 14:\n%s", len(got), out)
	}
	if !strings.Contains(got[7], `"id":"`+ev(6)+`"`) {
		t.Errorf("jsonl line 8 is not the second receipt of the batch at seq 7: %s", got[7])
	}
	slices.Sort(got)
	slices.Sort(want)
	if !slices.Equal(got, want) {
		t.Errorf("jsonl events differ from those of the stream without batches:\n%s", out)
	}

	dir := t.TempDir()
	if code, _, errOut := f.audit("replay", "--format", "html", "--out", dir); code != exitOK {
		t.Fatalf("replay --format html: exit %d: %s", code, errOut)
	}
	b, err := os.ReadFile(filepath.Join(dir, render.FileName(cs(1))))
	if err != nil {
		t.Fatal(err)
	}
	page := string(b)
	for text, n := range map[string]int{
		"10 events from the REFERRALS stream, seq 1 to 8": 1,
		`<span class="seq">seq 7</span>`:                  3,
		"confirms delivery":                               5,
	} {
		if got := strings.Count(page, text); got != n {
			t.Errorf("case page has %q %d times, want %d", text, got, n)
		}
	}
}

// A stream whose receipts come in batches verifies clean, signed or not,
// and a receipt sent again in another batch is a republish.
func TestVerifyBatchesClean(t *testing.T) {
	t.Parallel()
	t.Run("unsigned", func(t *testing.T) {
		t.Parallel()
		f := newFixture(t)
		story := f.story()
		f.publishMsgs(f.batchMsgs(story, batchedStory))
		f.publish(f.batchOf(find(story, ev(6)), find(story, ev(10))))
		code, out, errOut := f.audit("verify")
		if code != exitOK {
			t.Fatalf("verify: exit %d\n%s%s", code, out, errOut)
		}
		for _, want := range []string{
			"verified 16 events, seq 1 to 13: no problems",
			"events: 16 CloudEvents, 2 republished copies",
			"referrals: 3 requested; now 1 completed, 1 declined, 1 received",
		} {
			if !strings.Contains(out, want) {
				t.Errorf("verify output lacks %q:\n%s", want, out)
			}
		}
	})
	t.Run("signed", func(t *testing.T) {
		t.Parallel()
		f := newFixture(t)
		f.useKeys()
		f.publishMsgs(f.batchMsgs(f.story(), batchedStory))
		code, out, errOut := f.audit("verify", "--trust", f.trustFile)
		if code != exitOK || !strings.Contains(out, "verified 14 events, seq 1 to 12: no problems") || !strings.Contains(out, "signatures: checked against 4 trust anchors") {
			t.Fatalf("verify: exit %d\n%s%s", code, out, errOut)
		}
		for _, from := range []string{"7", "8"} {
			if code, out, _ := f.audit("verify", "--trust", f.trustFile, "--from-seq", from); code != exitOK {
				t.Errorf("verify --from-seq %s: exit %d\n%s", from, code, out)
			}
		}
	})
}

// Tampering with a receipt inside a batch is found and named at the
// batch's sequence, and a batch that is no batch of events is malformed.
func TestVerifyFindsTamperingInBatches(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name   string
		signed bool
		tamper func(f *fixture, story []spec, msgs []*nats.Msg)
		want   []string // problem lines, in order, each a prefix
		events int
	}{{
		name:   "changed receipt in a signed batch",
		signed: true,
		tamper: func(f *fixture, story []spec, msgs []*nats.Msg) {
			// Health's receipt for "started", the second of the batch at
			// seq 7, now says rejected.
			m := msgs[6]
			i := bytes.Index(m.Data, []byte(`"id":"`+ev(6)+`"`))
			j := i + bytes.Index(m.Data[i:], []byte(`"outcome":"applied"`))
			if i < 0 || j < i {
				f.t.Fatal("no receipt ev(6) in the batch")
			}
			m.Data = slices.Concat(m.Data[:j], []byte(`"outcome":"rejected"`), m.Data[j+len(`"outcome":"applied"`):])
			f.publishMsgs(msgs)
		},
		want:   []string{"seq 7: bad signature: event " + ev(6) + ": bad signature: signature of node health does not match the event"},
		events: 14,
	}, {
		name: "altered copy in another batch",
		tamper: func(f *fixture, story []spec, msgs []*nats.Msg) {
			f.publishMsgs(msgs)
			r := find(story, ev(6))
			r.data = map[string]any{"event_id": ev(5), "event_type": schemas.TypeStarted, "outcome": "rejected", "stream_seq": 5}
			f.publish(f.batchOf(find(story, ev(10)), r))
		},
		want: []string{"seq 13: altered: event " + ev(6) + " from /agencies/health differs from its first copy at seq 7"},
		// (ev10 again, in a batch of the receivers' making: a republish.)
		events: 16,
	}, {
		name: "batch replayed",
		tamper: func(f *fixture, story []spec, msgs []*nats.Msg) {
			f.publishMsgs(msgs)
			f.publish(f.copyOf(7, "replay-1"))
		},
		want: []string{
			"seq 13: replayed: event " + ev(4) + " from /agencies/health of seq 7 is stored again, not by the relay (Nats-Msg-Id \"replay-1\")",
			"seq 13: replayed: event " + ev(6) + " from /agencies/health of seq 7 is stored again, not by the relay (Nats-Msg-Id \"replay-1\")",
			"seq 13: replayed: event " + ev(10) + " from /agencies/health of seq 7 is stored again, not by the relay (Nats-Msg-Id \"replay-1\")",
		},
		events: 17,
	}, {
		name: "receipt twice in one batch",
		tamper: func(f *fixture, story []spec, msgs []*nats.Msg) {
			f.publishMsgs(f.batchMsgs(story, append(slices.Clone(batchedStory[:10]), []int{12, 12}, []int{14})))
		},
		want:   []string{"seq 11: replayed: event " + ev(12) + " from /agencies/ngo is in the batch message at seq 11 twice"},
		events: 15,
	}, {
		name: "undecodable batches",
		tamper: func(f *fixture, story []spec, msgs []*nats.Msg) {
			f.publishMsgs(msgs)
			// A receipt that is a fine event, but not in a batch as its
			// header says; an empty batch; a batch with a number in it.
			extra := receiptOf(ev(97), find(story, ev(13)), 10, 97)
			one := f.msg(extra)
			one.Header.Set("Content-Type", event.BatchContentType)
			f.publish(one)
			f.publish(&nats.Msg{Subject: one.Subject, Header: nats.Header{"Content-Type": {event.BatchContentType}}, Data: []byte("[]")})
			body, err := event.Encode(f.build(extra))
			if err != nil {
				f.t.Fatal(err)
			}
			f.publish(&nats.Msg{Subject: one.Subject, Header: nats.Header{"Content-Type": {event.BatchContentType}},
				Data: slices.Concat([]byte("["), body, []byte(",42]"))})
		},
		want: []string{
			"seq 13: malformed: malformed event: batch is not a JSON array of events",
			"seq 14: malformed: malformed event: batch holds no event",
			"seq 15: malformed: malformed event: body is not a JSON object",
		},
		events: 18,
	}} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			f := newFixture(t)
			if tc.signed {
				f.useKeys()
			}
			story := f.story()
			tc.tamper(f, story, f.batchMsgs(story, batchedStory))
			var args []string
			if tc.signed {
				args = append(args, "--trust", f.trustFile)
			}
			out := f.verifyProblems(t, tc.want, args...)
			if want := "verified " + strconv.Itoa(tc.events) + " events"; !strings.Contains(out, want) {
				t.Errorf("summary lacks %q:\n%s", want, out)
			}
		})
	}
}

// An undecodable batch is shown as one unreadable message, and left out
// of JSON Lines with a word on standard error.
func TestReplayUndecodableBatch(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	f.publishAll(f.story()[:1])
	f.publish(&nats.Msg{Subject: bus.Subject("education", "health", receipt.Type),
		Header: nats.Header{"Content-Type": {event.BatchContentType}}, Data: []byte(`{"not":"a batch"}`)})
	code, out, _ := f.audit("replay")
	if code != exitOK || seqs(out) != "1 2" || !strings.Contains(out, "education → health     (unreadable)") {
		t.Errorf("table: exit %d\n%s", code, out)
	}
	code, out, errOut := f.audit("replay", "--format", "jsonl")
	if code != exitProblems || strings.Count(out, "\n") != 1 || !strings.Contains(errOut, "seq 2: left out: malformed event: batch is not a JSON array of events") {
		t.Errorf("jsonl: exit %d\n%s\n%s", code, out, errOut)
	}
}
