package stream

import (
	"fmt"
	"strings"

	"github.com/refbus/refbus/pkg/bus"
	"github.com/refbus/refbus/schemas"
)

// Filter selects events. Empty fields select everything.
type Filter struct {
	// Node selects events the node sent or received, from the subject
	// refbus.<from>.<to>.<event>.
	Node string
	// Type selects one CloudEvents type, such as schemas.TypeRequested.
	Type string
	// Case selects events whose caseid extension is Case.
	Case string
	// Referral selects events whose CloudEvents subject (the referral id)
	// is Referral.
	Referral string
}

// Check returns an error a person can act on if a field cannot be a filter.
func (f Filter) Check() error {
	if f.Node != "" && !bus.ValidNode(f.Node) {
		return fmt.Errorf("--agency %q is not a well-formed node name (lowercase letters, digits, _ and -, such as health or ngo_nur)", f.Node)
	}
	if f.Type != "" && strings.ContainsAny(f.Type, " \t*>") {
		return fmt.Errorf("--type %q is not an event type (such as %s)", f.Type, schemas.TypeRequested)
	}
	return nil
}

// Subjects returns the subject filters that do on the server what can be
// done there: the node, and the type when the contract knows it (the
// subject names the type without its version, so Match checks the type
// exactly; a type the contract does not know is left to Match alone). Nil
// reads every subject.
func (f Filter) Subjects() []string {
	_, known := schemas.Types[f.Type]
	switch {
	case f.Node == "" && !known:
		return nil
	case f.Node == "":
		return []string{bus.Subject("*", "*", f.Type)}
	case !known:
		// The two filters overlap only on refbus.<n>.<n>.>, which no node
		// sends; JetStream delivers such a message once anyway.
		return []string{"refbus." + f.Node + ".*.>", "refbus.*." + f.Node + ".>"}
	}
	return []string{bus.Subject(f.Node, "*", f.Type), bus.Subject("*", f.Node, f.Type)}
}

// Match reports whether m passes the filters that only the event itself
// can answer; it scans m's attributes only when such a filter is set.
func (f Filter) Match(m *Msg) bool {
	if f.Node != "" {
		from, to := m.Route()
		if from != f.Node && to != f.Node {
			return false
		}
	}
	if f.Type == "" && f.Case == "" && f.Referral == "" {
		return true
	}
	a := m.Attrs()
	return (f.Type == "" || a.Is(Type, f.Type)) &&
		(f.Case == "" || a.Is(CaseID, f.Case)) &&
		(f.Referral == "" || a.Is(Subject, f.Referral))
}

// None reports whether the filter selects every message.
func (f Filter) None() bool { return f == Filter{} }

// Narrows reports whether the filter can hide some events of a referral it
// selects others of. Node, case and referral select whole referrals; a
// type does not.
func (f Filter) Narrows() bool { return f.Type != "" }

// Splits reports whether the filter can select a referral and hide another
// that a forward links it to: a node or a referral filter can; a case
// filter cannot, since a forward stays in its case.
func (f Filter) Splits() bool { return f.Node != "" || f.Referral != "" }
