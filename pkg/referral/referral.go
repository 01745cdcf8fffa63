// Package referral is the life of one referral as a state machine: which
// moves each party may make from each state, and what input each move needs.
//
// It is pure Go with no I/O, so the sending agency, the receiving agency and
// an auditor replaying the stream all apply exactly the same rules. A
// referral starts in Requested when the sender creates it; every later change
// is a Move checked by Apply.
package referral

import (
	"errors"
	"fmt"
	"slices"
	"strings"
)

// State is where a referral is in its life.
type State string

// The states, in the order of a referral's life.
const (
	Requested  State = "requested" // created by the sender; the start of every referral
	Received   State = "received"  // delivered to the receiver by the bus
	Accepted   State = "accepted"
	Declined   State = "declined" // end
	InProgress State = "in_progress"
	OnHold     State = "on_hold"
	Completed  State = "completed" // end
	Failed     State = "failed"    // end
	Cancelled  State = "cancelled" // end
	Forwarded  State = "forwarded" // end; a new referral carries the work on
)

// Move is a change of state.
type Move string

// The moves, in the order of a referral's life.
const (
	Receive  Move = "receive"  // requested -> received, by the system
	Accept   Move = "accept"   // received -> accepted, by the receiver
	Decline  Move = "decline"  // received -> declined, by the receiver; needs ReasonCode and Reason
	Start    Move = "start"    // accepted -> in_progress, by the receiver
	Hold     Move = "hold"     // in_progress -> on_hold, by the receiver; needs Reason
	Resume   Move = "resume"   // on_hold -> in_progress, by the receiver
	Complete Move = "complete" // in_progress -> completed, by the receiver; needs Outcome
	Fail     Move = "fail"     // accepted, in_progress, on_hold -> failed, by the receiver; needs Reason
	Cancel   Move = "cancel"   // any state but an end state -> cancelled, by the sender; needs Reason
	Forward  Move = "forward"  // received, accepted -> forwarded, by the receiver; needs ToAgency and Service
)

// Party is who makes a move.
type Party string

// The parties.
const (
	Sender   Party = "sender"   // the agency that made the referral
	Receiver Party = "receiver" // the agency asked to provide the service
	System   Party = "system"   // the bus itself, on delivery
)

// ReasonCode says why a receiver declined a referral, in a form that can be
// counted across agencies.
type ReasonCode string

// The decline reason codes.
const (
	NoCapacity    ReasonCode = "no_capacity" // such as no free shelter bed
	NotEligible   ReasonCode = "not_eligible"
	OutOfArea     ReasonCode = "out_of_area"
	Duplicate     ReasonCode = "duplicate"
	FamilyRefused ReasonCode = "family_refused"
	Other         ReasonCode = "other"
)

// Input is what a move may need besides the referral's state. Each move reads
// only the fields it needs and ignores the rest.
type Input struct {
	ReasonCode ReasonCode // decline
	Reason     string     // decline, hold, fail, cancel: free text for people
	Outcome    string     // complete
	ToAgency   string     // forward: the agency the new referral goes to
	Service    string     // forward: the service asked of it
}

// Errors Apply returns, wrapped in the error types below or, for ErrUnknown,
// in a plain message. Test for them with errors.Is.
var (
	ErrIllegalMove  = errors.New("illegal move")
	ErrNotParty     = errors.New("party may not make this move")
	ErrMissingInput = errors.New("missing input")
	ErrUnknown      = errors.New("unknown") // a state, move or party this package does not define
)

// IllegalMoveError means the move cannot be made from the referral's state by
// anyone. It unwraps to ErrIllegalMove.
type IllegalMoveError struct {
	From    State
	Move    Move
	By      Party
	Allowed []Move // what By may do now instead, from Allowed(From, By)
}

// Error returns, for example, "cannot start a referral that is received;
// allowed now for the receiver: accept, decline, forward".
func (e *IllegalMoveError) Error() string {
	head := fmt.Sprintf("cannot %s a referral that is %s", e.Move, human(e.From))
	if e.From.Terminal() {
		return fmt.Sprintf("%s; %s is an end state, no move is allowed", head, human(e.From))
	}
	now := "none"
	if len(e.Allowed) > 0 {
		now = joinMoves(e.Allowed)
	}
	return fmt.Sprintf("%s; allowed now for the %s: %s", head, e.By, now)
}

// Unwrap returns ErrIllegalMove.
func (e *IllegalMoveError) Unwrap() error { return ErrIllegalMove }

// NotPartyError means the move can be made from the referral's state, but not
// by this party. It unwraps to ErrNotParty.
type NotPartyError struct {
	Move Move
	By   Party // who tried
	Want Party // who may
}

// Error returns, for example, "the sender cannot accept a referral: only the
// receiver can".
func (e *NotPartyError) Error() string {
	return fmt.Sprintf("the %s cannot %s a referral: only the %s can", e.By, e.Move, e.Want)
}

// Unwrap returns ErrNotParty.
func (e *NotPartyError) Unwrap() error { return ErrNotParty }

// The Input fields a MissingInputError can name, as their snake_case wire
// names.
const (
	FieldReasonCode = "reason_code"
	FieldReason     = "reason"
	FieldOutcome    = "outcome"
	FieldToAgency   = "to_agency"
	FieldService    = "service"
)

// MissingInputError means the move needs an Input field that is empty, or,
// for the reason code, not one of ReasonCodes. It unwraps to ErrMissingInput.
type MissingInputError struct {
	Move  Move
	Field string // FieldReasonCode, FieldReason, ...
	msg   string
}

// Error returns, for example, "decline needs a reason code (one of:
// no_capacity, not_eligible, out_of_area, duplicate, family_refused, other)".
func (e *MissingInputError) Error() string { return e.msg }

// Unwrap returns ErrMissingInput.
func (e *MissingInputError) Unwrap() error { return ErrMissingInput }

// rule is one move: the states it leaves, the state it reaches, who makes it
// and which Input fields it needs.
type rule struct {
	from  []State
	to    State
	by    Party
	needs []string
}

var (
	states = []State{Requested, Received, Accepted, Declined, InProgress, OnHold,
		Completed, Failed, Cancelled, Forwarded}
	moves   = []Move{Receive, Accept, Decline, Start, Hold, Resume, Complete, Fail, Cancel, Forward}
	reasons = []ReasonCode{NoCapacity, NotEligible, OutOfArea, Duplicate, FamilyRefused, Other}

	rules = map[Move]rule{
		Receive:  {from: []State{Requested}, to: Received, by: System},
		Accept:   {from: []State{Received}, to: Accepted, by: Receiver},
		Decline:  {from: []State{Received}, to: Declined, by: Receiver, needs: []string{FieldReasonCode, FieldReason}},
		Start:    {from: []State{Accepted}, to: InProgress, by: Receiver},
		Hold:     {from: []State{InProgress}, to: OnHold, by: Receiver, needs: []string{FieldReason}},
		Resume:   {from: []State{OnHold}, to: InProgress, by: Receiver},
		Complete: {from: []State{InProgress}, to: Completed, by: Receiver, needs: []string{FieldOutcome}},
		Fail:     {from: []State{Accepted, InProgress, OnHold}, to: Failed, by: Receiver, needs: []string{FieldReason}},
		Cancel: {from: []State{Requested, Received, Accepted, InProgress, OnHold}, to: Cancelled, by: Sender,
			needs: []string{FieldReason}},
		Forward: {from: []State{Received, Accepted}, to: Forwarded, by: Receiver,
			needs: []string{FieldToAgency, FieldService}},
	}

	pastTense = map[Move]string{
		Receive: "received", Accept: "accepted", Decline: "declined", Start: "started", Hold: "held",
		Resume: "resumed", Complete: "completed", Fail: "failed", Cancel: "cancelled", Forward: "forwarded",
	}
)

// Apply makes move m from state from on behalf of party by, and returns the
// new state. Forward returns Forwarded; creating the new referral, linked by
// its parent id in the same case and starting in Requested, is the caller's
// job.
//
// The checks run in this order, and the first that fails is returned:
// unknown names (ErrUnknown), the move from this state (*IllegalMoveError),
// the party (*NotPartyError), the input (*MissingInputError).
func Apply(from State, m Move, by Party, in Input) (State, error) {
	if !slices.Contains(states, from) {
		return "", fmt.Errorf("%w state %q", ErrUnknown, from)
	}
	r, ok := rules[m]
	if !ok {
		return "", fmt.Errorf("%w move %q", ErrUnknown, m)
	}
	if by != Sender && by != Receiver && by != System {
		return "", fmt.Errorf("%w party %q", ErrUnknown, by)
	}
	if !slices.Contains(r.from, from) {
		return "", &IllegalMoveError{From: from, Move: m, By: by, Allowed: Allowed(from, by)}
	}
	if by != r.by {
		return "", &NotPartyError{Move: m, By: by, Want: r.by}
	}
	for _, f := range r.needs {
		if err := check(m, f, in); err != nil {
			return "", err
		}
	}
	return r.to, nil
}

// check returns a *MissingInputError if field f of in is empty or, for the
// reason code, not a known code. Blank text counts as empty: a reason of
// spaces tells the family nothing.
func check(m Move, f string, in Input) error {
	var v, what string
	switch f {
	case FieldReasonCode:
		if slices.Contains(reasons, in.ReasonCode) {
			return nil
		}
		codes := make([]string, len(reasons))
		for i, c := range reasons {
			codes[i] = string(c)
		}
		msg := fmt.Sprintf("%s needs a reason code (one of: %s)", m, strings.Join(codes, ", "))
		if in.ReasonCode != "" {
			msg += fmt.Sprintf(", got %q", in.ReasonCode)
		}
		return &MissingInputError{Move: m, Field: f, msg: msg}
	case FieldReason:
		v, what = in.Reason, "a reason"
	case FieldOutcome:
		v, what = in.Outcome, "an outcome"
	case FieldToAgency:
		v, what = in.ToAgency, "the agency to forward to (to_agency)"
	case FieldService:
		v, what = in.Service, "the service to ask for (service)"
	}
	if strings.TrimSpace(v) != "" {
		return nil
	}
	return &MissingInputError{Move: m, Field: f, msg: fmt.Sprintf("%s needs %s", m, what)}
}

// Allowed returns the moves party by may make from state from, sorted by
// name; none from an end state or an unknown state.
func Allowed(from State, by Party) []Move {
	var out []Move
	for m, r := range rules {
		if r.by == by && slices.Contains(r.from, from) {
			out = append(out, m)
		}
	}
	slices.Sort(out)
	return out
}

// Terminal reports whether s is an end state, from which no move is allowed.
func (s State) Terminal() bool {
	switch s {
	case Declined, Completed, Failed, Cancelled, Forwarded:
		return true
	}
	return false
}

// States returns every state, in the order of a referral's life.
func States() []State { return slices.Clone(states) }

// Moves returns every move, in the order of a referral's life.
func Moves() []Move { return slices.Clone(moves) }

// ReasonCodes returns every decline reason code.
func ReasonCodes() []ReasonCode { return slices.Clone(reasons) }

// EventType returns the CloudEvents type of the event that records move m,
// such as "org.refbus.referral.accepted.v1", or "" for an unknown move.
func EventType(m Move) string {
	p, ok := pastTense[m]
	if !ok {
		return ""
	}
	return "org.refbus.referral." + p + ".v1"
}

// human spells a state for a sentence: "in progress", not "in_progress".
func human(s State) string { return strings.ReplaceAll(string(s), "_", " ") }

func joinMoves(ms []Move) string {
	s := make([]string, len(ms))
	for i, m := range ms {
		s[i] = string(m)
	}
	return strings.Join(s, ", ")
}
