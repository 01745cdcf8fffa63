package referral_test

import (
	"errors"
	"slices"
	"testing"

	"github.com/refbus/refbus/pkg/referral"
)

// transition is one legal step, written out independently of both the
// package and grid.
type transition struct {
	from referral.State
	move referral.Move
	by   referral.Party
}

var legal = map[transition]referral.State{
	{"requested", "receive", "system"}:      "received",
	{"received", "accept", "receiver"}:      "accepted",
	{"received", "decline", "receiver"}:     "declined",
	{"accepted", "start", "receiver"}:       "in_progress",
	{"in_progress", "hold", "receiver"}:     "on_hold",
	{"on_hold", "resume", "receiver"}:       "in_progress",
	{"in_progress", "complete", "receiver"}: "completed",
	{"accepted", "fail", "receiver"}:        "failed",
	{"in_progress", "fail", "receiver"}:     "failed",
	{"on_hold", "fail", "receiver"}:         "failed",
	{"requested", "cancel", "sender"}:       "cancelled",
	{"received", "cancel", "sender"}:        "cancelled",
	{"accepted", "cancel", "sender"}:        "cancelled",
	{"in_progress", "cancel", "sender"}:     "cancelled",
	{"on_hold", "cancel", "sender"}:         "cancelled",
	{"received", "forward", "receiver"}:     "forwarded",
	{"accepted", "forward", "receiver"}:     "forwarded",
}

// needs is which Input fields each move requires, by the bit fuzzInput uses.
var needs = map[referral.Move]uint8{
	"decline":  1<<0 | 1<<1, // reason code, reason
	"hold":     1 << 1,
	"fail":     1 << 1,
	"cancel":   1 << 1,
	"complete": 1 << 2,
	"forward":  1<<3 | 1<<4, // to agency, service
}

// fuzzInput fills the Input fields whose bits are set in mask; bit 5 makes the
// reason code one that does not exist.
func fuzzInput(mask uint8) referral.Input {
	var in referral.Input
	if mask&(1<<0) != 0 {
		in.ReasonCode = "out_of_area"
		if mask&(1<<5) != 0 {
			in.ReasonCode = "too_far"
		}
	}
	if mask&(1<<1) != 0 {
		in.Reason = "family moved to Bishkek"
	}
	if mask&(1<<2) != 0 {
		in.Outcome = "benefit granted"
	}
	if mask&(1<<3) != 0 {
		in.ToAgency = "social-almaty"
	}
	if mask&(1<<4) != 0 {
		in.Service = "housing help"
	}
	return in
}

// FuzzSequence reads the input as (move, party) byte pairs applied from
// requested. The low two bits of the party byte pick the party (3 is an
// unknown one) and the high six the Input fields to fill.
func FuzzSequence(f *testing.F) {
	f.Add([]byte{0, 2, 1, 1, 3, 1})                                 // receive, accept, start
	f.Add([]byte{0, 2, 2, 1 | 3<<2})                                // receive, decline
	f.Add([]byte{0, 2, 1, 1, 9, 1 | 0x1f<<2})                       // receive, accept, forward
	f.Add([]byte{8, 0 | 2<<2, 0, 2})                                // cancel, then receive
	f.Add([]byte{0, 2, 1, 1, 3, 1, 4, 1 | 2<<2, 5, 1, 6, 1 | 4<<2}) // to completed
	f.Add([]byte{10, 1, 0, 3, 255, 255})                            // unknown move and party
	f.Fuzz(func(t *testing.T, data []byte) {
		moves := []referral.Move{"receive", "accept", "decline", "start", "hold", "resume",
			"complete", "fail", "cancel", "forward", "bogus"}
		parties := []referral.Party{"sender", "receiver", "system", "bogus"}
		s := referral.State("requested")
		for i := 0; i+1 < len(data); i += 2 {
			m := moves[int(data[i])%len(moves)]
			by := parties[data[i+1]&3]
			mask := data[i+1] >> 2
			got, err := referral.Apply(s, m, by, fuzzInput(mask))

			to, ok := legal[transition{s, m, by}]
			inputOK := mask&needs[m] == needs[m] && (needs[m]&1 == 0 || mask&(1<<5) == 0)
			switch {
			case err == nil:
				if !ok {
					t.Fatalf("%s from %s by %s succeeded, but it is not a legal transition", m, s, by)
				}
				if got != to {
					t.Fatalf("%s from %s by %s reached %s, want %s", m, s, by, got, to)
				}
				if !inputOK {
					t.Fatalf("%s from %s succeeded with input mask %06b, which lacks %06b", m, s, mask, needs[m])
				}
				if !slices.Contains(allStates, got) {
					t.Fatalf("%s from %s reached undefined state %q", m, s, got)
				}
				s = got
			case ok && inputOK:
				t.Fatalf("legal %s from %s by %s with input mask %06b failed: %v", m, s, by, mask, err)
			case got != "":
				t.Fatalf("%s from %s failed (%v) but returned state %q", m, s, err, got)
			case slices.Contains(endStates, s) && !errors.Is(err, referral.ErrIllegalMove) && !errors.Is(err, referral.ErrUnknown):
				t.Fatalf("%s from end state %s by %s failed with %v, want ErrIllegalMove", m, s, by, err)
			case !errors.Is(err, referral.ErrIllegalMove) && !errors.Is(err, referral.ErrNotParty) &&
				!errors.Is(err, referral.ErrMissingInput) && !errors.Is(err, referral.ErrUnknown):
				t.Fatalf("%s from %s by %s failed with an error of no known kind: %v", m, s, by, err)
			}
			if slices.Contains(endStates, s) {
				if got := referral.Allowed(s, by); len(got) != 0 {
					t.Fatalf("Allowed(%s, %s) = %v in an end state", s, by, got)
				}
			}
		}
	})
}
