package referral_test

import (
	"errors"
	"slices"
	"strings"
	"testing"

	"github.com/refbus/refbus/pkg/referral"
)

// grid is the whole state machine written out by hand from DOMAIN.md and the
// project issue: every state, every move, and what each party gets. A state
// name is the state the move reaches; ILL is ErrIllegalMove (nobody may make
// this move from this state); PTY is ErrNotParty (someone may, but not this
// party).
const grid = `
state        move      sender     receiver     system
requested    receive   PTY        PTY          received
requested    accept    ILL        ILL          ILL
requested    decline   ILL        ILL          ILL
requested    start     ILL        ILL          ILL
requested    hold      ILL        ILL          ILL
requested    resume    ILL        ILL          ILL
requested    complete  ILL        ILL          ILL
requested    fail      ILL        ILL          ILL
requested    cancel    cancelled  PTY          PTY
requested    forward   ILL        ILL          ILL

received     receive   ILL        ILL          ILL
received     accept    PTY        accepted     PTY
received     decline   PTY        declined     PTY
received     start     ILL        ILL          ILL
received     hold      ILL        ILL          ILL
received     resume    ILL        ILL          ILL
received     complete  ILL        ILL          ILL
received     fail      ILL        ILL          ILL
received     cancel    cancelled  PTY          PTY
received     forward   PTY        forwarded    PTY

accepted     receive   ILL        ILL          ILL
accepted     accept    ILL        ILL          ILL
accepted     decline   ILL        ILL          ILL
accepted     start     PTY        in_progress  PTY
accepted     hold      ILL        ILL          ILL
accepted     resume    ILL        ILL          ILL
accepted     complete  ILL        ILL          ILL
accepted     fail      PTY        failed       PTY
accepted     cancel    cancelled  PTY          PTY
accepted     forward   PTY        forwarded    PTY

in_progress  receive   ILL        ILL          ILL
in_progress  accept    ILL        ILL          ILL
in_progress  decline   ILL        ILL          ILL
in_progress  start     ILL        ILL          ILL
in_progress  hold      PTY        on_hold      PTY
in_progress  resume    ILL        ILL          ILL
in_progress  complete  PTY        completed    PTY
in_progress  fail      PTY        failed       PTY
in_progress  cancel    cancelled  PTY          PTY
in_progress  forward   ILL        ILL          ILL

on_hold      receive   ILL        ILL          ILL
on_hold      accept    ILL        ILL          ILL
on_hold      decline   ILL        ILL          ILL
on_hold      start     ILL        ILL          ILL
on_hold      hold      ILL        ILL          ILL
on_hold      resume    PTY        in_progress  PTY
on_hold      complete  ILL        ILL          ILL
on_hold      fail      PTY        failed       PTY
on_hold      cancel    cancelled  PTY          PTY
on_hold      forward   ILL        ILL          ILL

declined     receive   ILL        ILL          ILL
declined     accept    ILL        ILL          ILL
declined     decline   ILL        ILL          ILL
declined     start     ILL        ILL          ILL
declined     hold      ILL        ILL          ILL
declined     resume    ILL        ILL          ILL
declined     complete  ILL        ILL          ILL
declined     fail      ILL        ILL          ILL
declined     cancel    ILL        ILL          ILL
declined     forward   ILL        ILL          ILL

completed    receive   ILL        ILL          ILL
completed    accept    ILL        ILL          ILL
completed    decline   ILL        ILL          ILL
completed    start     ILL        ILL          ILL
completed    hold      ILL        ILL          ILL
completed    resume    ILL        ILL          ILL
completed    complete  ILL        ILL          ILL
completed    fail      ILL        ILL          ILL
completed    cancel    ILL        ILL          ILL
completed    forward   ILL        ILL          ILL

failed       receive   ILL        ILL          ILL
failed       accept    ILL        ILL          ILL
failed       decline   ILL        ILL          ILL
failed       start     ILL        ILL          ILL
failed       hold      ILL        ILL          ILL
failed       resume    ILL        ILL          ILL
failed       complete  ILL        ILL          ILL
failed       fail      ILL        ILL          ILL
failed       cancel    ILL        ILL          ILL
failed       forward   ILL        ILL          ILL

cancelled    receive   ILL        ILL          ILL
cancelled    accept    ILL        ILL          ILL
cancelled    decline   ILL        ILL          ILL
cancelled    start     ILL        ILL          ILL
cancelled    hold      ILL        ILL          ILL
cancelled    resume    ILL        ILL          ILL
cancelled    complete  ILL        ILL          ILL
cancelled    fail      ILL        ILL          ILL
cancelled    cancel    ILL        ILL          ILL
cancelled    forward   ILL        ILL          ILL

forwarded    receive   ILL        ILL          ILL
forwarded    accept    ILL        ILL          ILL
forwarded    decline   ILL        ILL          ILL
forwarded    start     ILL        ILL          ILL
forwarded    hold      ILL        ILL          ILL
forwarded    resume    ILL        ILL          ILL
forwarded    complete  ILL        ILL          ILL
forwarded    fail      ILL        ILL          ILL
forwarded    cancel    ILL        ILL          ILL
forwarded    forward   ILL        ILL          ILL
`

// The names, written out here rather than taken from the package, so that a
// state or move added to the package without a test fails TestNames.
var (
	allStates = []referral.State{"requested", "received", "accepted", "declined", "in_progress",
		"on_hold", "completed", "failed", "cancelled", "forwarded"}
	allMoves = []referral.Move{"receive", "accept", "decline", "start", "hold", "resume",
		"complete", "fail", "cancel", "forward"}
	allParties = []referral.Party{"sender", "receiver", "system"}
	endStates  = []referral.State{"declined", "completed", "failed", "cancelled", "forwarded"}
)

// full has every field a move can need, valid.
var full = referral.Input{
	ReasonCode: "no_capacity",
	Reason:     "no free bed until Monday",
	Outcome:    "individual learning plan opened",
	ToAgency:   "ngo-nur",
	Service:    "shelter",
}

type cell struct {
	from referral.State
	move referral.Move
	by   referral.Party
}

// parseGrid reads grid into a map from each cell to its expected result.
func parseGrid(t testing.TB) map[cell]string {
	t.Helper()
	want := map[cell]string{}
	lines := strings.Split(strings.TrimSpace(grid), "\n")
	for _, line := range lines[1:] {
		f := strings.Fields(line)
		if len(f) == 0 {
			continue
		}
		if len(f) != 5 {
			t.Fatalf("grid line %q: want 5 fields", line)
		}
		for i, by := range allParties {
			c := cell{referral.State(f[0]), referral.Move(f[1]), by}
			if _, dup := want[c]; dup {
				t.Fatalf("grid has %v twice", c)
			}
			want[c] = f[2+i]
		}
	}
	if n := len(allStates) * len(allMoves) * len(allParties); len(want) != n {
		t.Fatalf("grid has %d cells, want %d", len(want), n)
	}
	return want
}

func TestApplyEveryCombination(t *testing.T) {
	t.Parallel()
	for c, want := range parseGrid(t) {
		got, err := referral.Apply(c.from, c.move, c.by, full)
		switch want {
		case "ILL":
			var ie *referral.IllegalMoveError
			if !errors.Is(err, referral.ErrIllegalMove) || !errors.As(err, &ie) {
				t.Errorf("%s %s by %s = %q, %v; want ErrIllegalMove", c.move, c.from, c.by, got, err)
				continue
			}
			if ie.From != c.from || ie.Move != c.move || ie.By != c.by {
				t.Errorf("%s %s by %s: error fields %+v", c.move, c.from, c.by, ie)
			}
		case "PTY":
			var pe *referral.NotPartyError
			if !errors.Is(err, referral.ErrNotParty) || !errors.As(err, &pe) {
				t.Errorf("%s %s by %s = %q, %v; want ErrNotParty", c.move, c.from, c.by, got, err)
				continue
			}
			if pe.Move != c.move || pe.By != c.by || pe.Want == c.by {
				t.Errorf("%s %s by %s: error fields %+v", c.move, c.from, c.by, pe)
			}
		default:
			if err != nil || got != referral.State(want) {
				t.Errorf("%s %s by %s = %q, %v; want %q", c.move, c.from, c.by, got, err, want)
			}
			continue
		}
		if got != "" {
			t.Errorf("%s %s by %s returned state %q with its error", c.move, c.from, c.by, got)
		}
	}
}

func TestAllowed(t *testing.T) {
	t.Parallel()
	cells := parseGrid(t)
	for _, from := range allStates {
		for _, by := range allParties {
			var want []referral.Move
			for _, m := range allMoves {
				if r := cells[cell{from, m, by}]; r != "ILL" && r != "PTY" {
					want = append(want, m)
				}
			}
			slices.Sort(want)
			if got := referral.Allowed(from, by); !slices.Equal(got, want) {
				t.Errorf("Allowed(%s, %s) = %v, want %v", from, by, got, want)
			}
		}
	}
	// Spot checks in plain sight, so the derivation above is not the only word.
	if got, want := referral.Allowed(referral.Received, referral.Receiver),
		[]referral.Move{referral.Accept, referral.Decline, referral.Forward}; !slices.Equal(got, want) {
		t.Errorf("Allowed(received, receiver) = %v, want %v", got, want)
	}
	if got := referral.Allowed("bogus", referral.Sender); got != nil {
		t.Errorf("Allowed(bogus, sender) = %v, want none", got)
	}
	if got := referral.Allowed(referral.Requested, "bogus"); got != nil {
		t.Errorf("Allowed(requested, bogus) = %v, want none", got)
	}
}

func TestErrorMessages(t *testing.T) {
	t.Parallel()
	tests := []struct {
		from referral.State
		move referral.Move
		by   referral.Party
		in   referral.Input
		want error
		msg  string
	}{
		{"received", "start", "receiver", full, referral.ErrIllegalMove,
			"cannot start a referral that is received; allowed now for the receiver: accept, decline, forward"},
		{"requested", "accept", "receiver", full, referral.ErrIllegalMove,
			"cannot accept a referral that is requested; allowed now for the receiver: none"},
		{"in_progress", "accept", "receiver", full, referral.ErrIllegalMove,
			"cannot accept a referral that is in progress; allowed now for the receiver: complete, fail, hold"},
		{"declined", "accept", "receiver", full, referral.ErrIllegalMove,
			"cannot accept a referral that is declined; declined is an end state, no move is allowed"},
		{"forwarded", "cancel", "sender", full, referral.ErrIllegalMove,
			"cannot cancel a referral that is forwarded; forwarded is an end state, no move is allowed"},
		{"received", "accept", "sender", full, referral.ErrNotParty,
			"the sender cannot accept a referral: only the receiver can"},
		{"requested", "receive", "receiver", full, referral.ErrNotParty,
			"the receiver cannot receive a referral: only the system can"},
		{"on_hold", "cancel", "receiver", full, referral.ErrNotParty,
			"the receiver cannot cancel a referral: only the sender can"},
		{"bogus", "accept", "receiver", full, referral.ErrUnknown, `unknown state "bogus"`},
		{"", "accept", "receiver", full, referral.ErrUnknown, `unknown state ""`},
		{"received", "approve", "receiver", full, referral.ErrUnknown, `unknown move "approve"`},
		{"received", "accept", "auditor", full, referral.ErrUnknown, `unknown party "auditor"`},
		{"received", "accept", "Receiver", full, referral.ErrUnknown, `unknown party "Receiver"`},
	}
	for _, tc := range tests {
		got, err := referral.Apply(tc.from, tc.move, tc.by, tc.in)
		if !errors.Is(err, tc.want) || got != "" {
			t.Errorf("Apply(%q, %q, %q) = %q, %v; want %v", tc.from, tc.move, tc.by, got, err, tc.want)
			continue
		}
		if err.Error() != tc.msg {
			t.Errorf("Apply(%q, %q, %q) message\n%q, want\n%q", tc.from, tc.move, tc.by, err.Error(), tc.msg)
		}
	}
}

func TestMissingInput(t *testing.T) {
	t.Parallel()
	const codes = "(one of: no_capacity, not_eligible, out_of_area, duplicate, family_refused, other)"
	with := func(edit func(*referral.Input)) referral.Input {
		in := full
		edit(&in)
		return in
	}
	tests := []struct {
		name  string
		from  referral.State
		move  referral.Move
		by    referral.Party
		in    referral.Input
		want  error  // nil when the move must succeed
		field string // for ErrMissingInput
		msg   string // for ErrMissingInput
	}{
		{"decline without anything", "received", "decline", "receiver", referral.Input{},
			referral.ErrMissingInput, "reason_code", "decline needs a reason code " + codes},
		{"decline without code", "received", "decline", "receiver", with(func(in *referral.Input) { in.ReasonCode = "" }),
			referral.ErrMissingInput, "reason_code", "decline needs a reason code " + codes},
		{"decline with unknown code", "received", "decline", "receiver", with(func(in *referral.Input) { in.ReasonCode = "busy" }),
			referral.ErrMissingInput, "reason_code", "decline needs a reason code " + codes + `, got "busy"`},
		{"decline with upper-case code", "received", "decline", "receiver", with(func(in *referral.Input) { in.ReasonCode = "NO_CAPACITY" }),
			referral.ErrMissingInput, "reason_code", "decline needs a reason code " + codes + `, got "NO_CAPACITY"`},
		{"decline without text", "received", "decline", "receiver", with(func(in *referral.Input) { in.Reason = "" }),
			referral.ErrMissingInput, "reason", "decline needs a reason"},
		{"decline with blank text", "received", "decline", "receiver", with(func(in *referral.Input) { in.Reason = " \t\n" }),
			referral.ErrMissingInput, "reason", "decline needs a reason"},
		{"decline other with text", "received", "decline", "receiver",
			referral.Input{ReasonCode: "other", Reason: "family moved abroad"}, nil, "", ""},
		{"decline not eligible with text", "received", "decline", "receiver",
			referral.Input{ReasonCode: "not_eligible", Reason: "child is over 3"}, nil, "", ""},
		{"hold without reason", "in_progress", "hold", "receiver", referral.Input{},
			referral.ErrMissingInput, "reason", "hold needs a reason"},
		{"hold with reason only", "in_progress", "hold", "receiver", referral.Input{Reason: "child in hospital"}, nil, "", ""},
		{"complete without outcome", "in_progress", "complete", "receiver", with(func(in *referral.Input) { in.Outcome = "  " }),
			referral.ErrMissingInput, "outcome", "complete needs an outcome"},
		{"complete with outcome only", "in_progress", "complete", "receiver", referral.Input{Outcome: "benefit granted"}, nil, "", ""},
		{"fail without reason", "on_hold", "fail", "receiver", with(func(in *referral.Input) { in.Reason = "" }),
			referral.ErrMissingInput, "reason", "fail needs a reason"},
		{"cancel without reason", "requested", "cancel", "sender", referral.Input{},
			referral.ErrMissingInput, "reason", "cancel needs a reason"},
		{"cancel with reason only", "on_hold", "cancel", "sender", referral.Input{Reason: "sent to the wrong centre"}, nil, "", ""},
		{"forward without agency", "accepted", "forward", "receiver", with(func(in *referral.Input) { in.ToAgency = "" }),
			referral.ErrMissingInput, "to_agency", "forward needs the agency to forward to (to_agency)"},
		{"forward without service", "received", "forward", "receiver", with(func(in *referral.Input) { in.Service = "" }),
			referral.ErrMissingInput, "service", "forward needs the service to ask for (service)"},
		{"forward with both only", "received", "forward", "receiver", referral.Input{ToAgency: "ngo-podrugi", Service: "shelter"}, nil, "", ""},
		{"accept needs nothing", "received", "accept", "receiver", referral.Input{}, nil, "", ""},
		{"receive needs nothing", "requested", "receive", "system", referral.Input{}, nil, "", ""},
		{"start needs nothing", "accepted", "start", "receiver", referral.Input{}, nil, "", ""},
		{"resume needs nothing", "on_hold", "resume", "receiver", referral.Input{}, nil, "", ""},
		// The move and the party are checked before the input.
		{"illegal move before input", "completed", "decline", "receiver", referral.Input{}, referral.ErrIllegalMove, "", ""},
		{"wrong party before input", "received", "decline", "sender", referral.Input{}, referral.ErrNotParty, "", ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			got, err := referral.Apply(tc.from, tc.move, tc.by, tc.in)
			if tc.want == nil {
				if err != nil || got == "" {
					t.Fatalf("Apply = %q, %v; want success", got, err)
				}
				return
			}
			if !errors.Is(err, tc.want) || got != "" {
				t.Fatalf("Apply = %q, %v; want %v", got, err, tc.want)
			}
			if tc.want != referral.ErrMissingInput {
				return
			}
			var me *referral.MissingInputError
			if !errors.As(err, &me) {
				t.Fatalf("error %T is not a *MissingInputError", err)
			}
			if me.Field != tc.field || me.Move != tc.move {
				t.Errorf("error names %s of %s, want %s of %s", me.Field, me.Move, tc.field, tc.move)
			}
			if err.Error() != tc.msg {
				t.Errorf("message %q, want %q", err.Error(), tc.msg)
			}
		})
	}
}

func TestNames(t *testing.T) {
	t.Parallel()
	if got := referral.States(); !slices.Equal(got, allStates) {
		t.Errorf("States() = %v, want %v", got, allStates)
	}
	if got := referral.Moves(); !slices.Equal(got, allMoves) {
		t.Errorf("Moves() = %v, want %v", got, allMoves)
	}
	want := []referral.ReasonCode{"no_capacity", "not_eligible", "out_of_area", "duplicate", "family_refused", "other"}
	if got := referral.ReasonCodes(); !slices.Equal(got, want) {
		t.Errorf("ReasonCodes() = %v, want %v", got, want)
	}
	// The lists are copies: a caller cannot change the machine.
	referral.States()[0] = "bogus"
	referral.Moves()[0] = "bogus"
	referral.ReasonCodes()[0] = "bogus"
	if referral.States()[0] != "requested" || referral.Moves()[0] != "receive" || referral.ReasonCodes()[0] != "no_capacity" {
		t.Error("a caller changed the package's lists")
	}
}

func TestTerminal(t *testing.T) {
	t.Parallel()
	for _, s := range append(allStates, "bogus", "") {
		if got, want := s.Terminal(), slices.Contains(endStates, s); got != want {
			t.Errorf("%q.Terminal() = %v, want %v", s, got, want)
		}
	}
}

func TestEventType(t *testing.T) {
	t.Parallel()
	tests := map[referral.Move]string{
		"receive":  "org.refbus.referral.received.v1",
		"accept":   "org.refbus.referral.accepted.v1",
		"decline":  "org.refbus.referral.declined.v1",
		"start":    "org.refbus.referral.started.v1",
		"hold":     "org.refbus.referral.held.v1",
		"resume":   "org.refbus.referral.resumed.v1",
		"complete": "org.refbus.referral.completed.v1",
		"fail":     "org.refbus.referral.failed.v1",
		"cancel":   "org.refbus.referral.cancelled.v1",
		"forward":  "org.refbus.referral.forwarded.v1",
		"bogus":    "",
		"":         "",
	}
	for m, want := range tests {
		if got := referral.EventType(m); got != want {
			t.Errorf("EventType(%q) = %q, want %q", m, got, want)
		}
	}
}

// TestScenarios walks the chains of help in DOMAIN.md.
func TestScenarios(t *testing.T) {
	t.Parallel()
	type step struct {
		move referral.Move
		by   referral.Party
		in   referral.Input
		want referral.State
	}
	tests := []struct {
		name  string
		steps []step
	}{
		{"early intervention: assessed and completed", []step{
			{"receive", "system", referral.Input{}, "received"},
			{"accept", "receiver", referral.Input{}, "accepted"},
			{"start", "receiver", referral.Input{}, "in_progress"},
			{"hold", "receiver", referral.Input{Reason: "child in hospital"}, "on_hold"},
			{"resume", "receiver", referral.Input{}, "in_progress"},
			{"complete", "receiver", referral.Input{Outcome: "individual learning plan opened"}, "completed"},
		}},
		{"domestic violence: shelter full, declined", []step{
			{"receive", "system", referral.Input{}, "received"},
			{"decline", "receiver", referral.Input{ReasonCode: "no_capacity", Reason: "no free bed"}, "declined"},
		}},
		{"domestic violence: social forwards to another shelter", []step{
			{"receive", "system", referral.Input{}, "received"},
			{"accept", "receiver", referral.Input{}, "accepted"},
			{"forward", "receiver", referral.Input{ToAgency: "ngo-zhan-saya", Service: "shelter"}, "forwarded"},
		}},
		{"sender cancels before delivery", []step{
			{"cancel", "sender", referral.Input{Reason: "family moved"}, "cancelled"},
		}},
		{"receiver fails on hold", []step{
			{"receive", "system", referral.Input{}, "received"},
			{"accept", "receiver", referral.Input{}, "accepted"},
			{"start", "receiver", referral.Input{}, "in_progress"},
			{"hold", "receiver", referral.Input{Reason: "family unreachable"}, "on_hold"},
			{"fail", "receiver", referral.Input{Reason: "family unreachable for 3 months"}, "failed"},
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			s := referral.Requested
			for _, st := range tc.steps {
				got, err := referral.Apply(s, st.move, st.by, st.in)
				if err != nil || got != st.want {
					t.Fatalf("%s from %s by %s = %q, %v; want %q", st.move, s, st.by, got, err, st.want)
				}
				s = got
			}
		})
	}
}
