package stream

import (
	"fmt"
	"strings"

	"github.com/refbus/refbus/pkg/bus"
)

// Filter selects events. Empty fields select everything.
type Filter struct {
	// Agency selects events the agency sent or received, from the subject
	// refbus.<from>.<to>.<event>.
	Agency string
	// Type selects one CloudEvents type, such as
	// org.refbus.referral.requested.v1.
	Type string
	// Case selects events whose caseid extension is Case.
	Case string
	// Referral selects events whose CloudEvents subject (the referral id)
	// is Referral.
	Referral string
}

// Check returns an error a person can act on if a field cannot be a filter.
func (f Filter) Check() error {
	if f.Agency != "" && !isToken(f.Agency) {
		return fmt.Errorf("--agency %q is not an agency name (such as %s)", f.Agency, strings.Join(bus.Agencies, ", "))
	}
	if f.Type != "" && strings.ContainsAny(f.Type, " \t*>") {
		return fmt.Errorf("--type %q is not an event type (such as org.refbus.referral.requested.v1)", f.Type)
	}
	return nil
}

// Subjects returns the subject filters that do on the server what can be
// done there: the agency and the type (the subject names the type without
// its version, so Match checks the type exactly). Nil reads every subject.
func (f Filter) Subjects() []string {
	event := ">"
	if name, ok := eventToken(f.Type); ok {
		event = name
	}
	if f.Agency == "" {
		if event == ">" {
			return nil
		}
		return []string{"refbus.*.*." + event}
	}
	// The two filters overlap only on refbus.<a>.<a>.>, which no agency
	// sends; JetStream delivers such a message once anyway.
	return []string{
		"refbus." + f.Agency + ".*." + event,
		"refbus.*." + f.Agency + "." + event,
	}
}

// Match reports whether m passes the filters that only the event itself
// can answer; it scans m's attributes only when such a filter is set.
func (f Filter) Match(m *Msg) bool {
	if f.Agency != "" {
		from, to := m.Route()
		if from != f.Agency && to != f.Agency {
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
// selects others of. Agency, case and referral select whole referrals; a
// type does not.
func (f Filter) Narrows() bool { return f.Type != "" }

// Splits reports whether the filter can select a referral and hide another
// that a forward links it to: an agency or a referral filter can; a case
// filter cannot, since a forward stays in its case.
func (f Filter) Splits() bool { return f.Agency != "" || f.Referral != "" }

// eventToken returns the <event> subject tokens of an event type of the
// refbus namespace (org.refbus.referral.requested.v1: referral.requested).
func eventToken(eventType string) (string, bool) {
	name, ok := strings.CutPrefix(eventType, "org.refbus.")
	if !ok {
		return "", false
	}
	i := strings.LastIndex(name, ".v")
	if i <= 0 {
		return "", false
	}
	name = name[:i]
	for _, tok := range strings.Split(name, ".") {
		if !isToken(tok) {
			return "", false
		}
	}
	return name, true
}

// isToken reports whether s can be one token of a NATS subject filter
// without being a wildcard.
func isToken(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '-') {
			return false
		}
	}
	return true
}
