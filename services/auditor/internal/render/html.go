package render

import (
	"bytes"
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"html/template"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/refbus/refbus/pkg/bus"
	"github.com/refbus/refbus/services/auditor/internal/stream"
)

//go:embed timeline.html.tmpl
var templates embed.FS

var timeline = template.Must(template.New("timeline.html.tmpl").
	Funcs(template.FuncMap{"last": func(es []entry) int { return len(es) - 1 }}).
	ParseFS(templates, "timeline.html.tmpl"))

// HTML writes one self-contained page per case: a timeline of its events
// with what each says, and the event as stored. Pages are written by Close,
// so a replay to HTML holds the selected events in memory: narrow it with
// a case, an agency or a range.
type HTML struct {
	dir   string
	out   io.Writer
	only  string
	cases map[string]*page
}

// NewHTML returns a writer of case-<id>.html files in dir, or, when dir is
// empty, of the page of case only to out.
func NewHTML(dir string, out io.Writer, only string) *HTML {
	return &HTML{dir: dir, out: out, only: only, cases: map[string]*page{}}
}

// page is what the template shows of one case.
type page struct {
	Case      string
	Events    []entry
	Referrals []*referralSummary
	Agencies  []string
	refs      map[string]*referralSummary
}

// entry is one event on the timeline.
type entry struct {
	Seq                  uint64
	Time, From, To, Type string
	Kind, Summary        string
	Referral, ID, Source string
	JSON                 string
}

type referralSummary struct {
	ID, From, To, Service, Status string
	Events                        int
}

// data holds the members of event data a timeline puts into words.
type data struct {
	ToAgency   string `json:"to_agency"`
	Service    string `json:"service"`
	ReasonCode string `json:"reason_code"`
	Reason     string `json:"reason"`
	Outcome    string `json:"outcome"`
	EventType  string `json:"event_type"`
	ParentID   string `json:"parent_id"`
}

// Write adds m to the page of its case.
func (h *HTML) Write(m *stream.Msg) error {
	a := m.Attrs()
	from, to := m.Route()
	caseID := a.CaseID()
	p := h.cases[caseID]
	if p == nil {
		p = &page{Case: caseID, refs: map[string]*referralSummary{}}
		h.cases[caseID] = p
	}
	var d data
	_ = json.Unmarshal(a.Data, &d)
	e := entry{
		Seq: m.Seq, Time: eventTime(a.Time()), From: from, To: to, Type: shortType(a.Type()),
		Referral: a.Subject(), ID: a.ID(), Source: a.Source(), JSON: indent(m.Data),
	}
	if e.Time == "" {
		e.Time = "(no time)"
	}
	e.Kind, e.Summary = describe(a, from, to, d)
	p.Events = append(p.Events, e)
	for _, ag := range []string{from, to} {
		if ag != "" && !slices.Contains(p.Agencies, ag) {
			p.Agencies = append(p.Agencies, ag)
		}
	}
	if a.Subject() != "" {
		p.track(a, from, to, d)
	}
	return nil
}

// track keeps the status of the referral m is about, as far as the case's
// events tell it.
func (p *page) track(a *stream.Attrs, from, to string, d data) {
	id := a.Subject()
	r := p.refs[id]
	if r == nil {
		r = &referralSummary{ID: id, Status: "unknown"}
		p.refs[id] = r
		p.Referrals = append(p.Referrals, r)
	}
	r.Events++
	switch {
	case a.Type() == requestedType:
		r.From, r.To, r.Service, r.Status = from, to, d.Service, "requested"
	case a.Type() == bus.ReceiptType && d.EventType == requestedType:
		switch {
		case d.Outcome != "applied":
			r.Status = "refused on delivery"
		case r.Status == "requested":
			r.Status = "received"
		}
	case strings.HasPrefix(a.Type(), "org.refbus.referral."):
		r.Status = verb(a.Type())
	}
}

const requestedType = "org.refbus.referral.requested.v1"

// describe puts an event into words.
func describe(a *stream.Attrs, from, to string, d data) (kind, summary string) {
	switch {
	case a.Err != nil && a.Type() == "":
		return "unreadable", "The message could not be read as an event: " + a.Err.Error() + "."
	case a.Type() == requestedType:
		s := fmt.Sprintf("%s refers the case to %s for %q", from, d.ToAgency, d.Service)
		if d.ParentID != "" {
			s += ", forwarding referral " + d.ParentID
		}
		return "requested", s + "."
	case a.Type() == bus.ReceiptType:
		s := fmt.Sprintf("%s confirms delivery of the %s event: %s.", from, shortType(d.EventType), d.Outcome)
		if d.Reason != "" {
			s += " Reason: " + d.Reason
		}
		return "receipt", s
	case strings.HasPrefix(a.Type(), "org.refbus.referral."):
		s := fmt.Sprintf("%s %s the referral", from, verb(a.Type()))
		if d.ReasonCode != "" {
			s += " (" + d.ReasonCode + ")"
		}
		if d.ToAgency != "" {
			s += " to " + d.ToAgency
		}
		for _, part := range []string{d.Reason, d.Outcome} {
			if part != "" {
				s += ": " + part
			}
		}
		return "move", s + "."
	}
	return "other", fmt.Sprintf("%s sent %s to %s.", from, a.Type(), to)
}

// verb returns the past tense a referral event type is named for
// (org.refbus.referral.accepted.v1: accepted).
func verb(t string) string {
	v := strings.TrimPrefix(t, "org.refbus.referral.")
	if i := strings.LastIndex(v, ".v"); i > 0 {
		v = v[:i]
	}
	return strings.ReplaceAll(v, "_", " ")
}

func indent(b []byte) string {
	var buf bytes.Buffer
	if err := json.Indent(&buf, b, "", "  "); err != nil {
		return string(b)
	}
	return buf.String()
}

// Close writes the pages.
func (h *HTML) Close() error {
	if h.dir == "" {
		p := h.cases[h.only]
		if p == nil {
			p = &page{Case: h.only}
		}
		return timeline.Execute(h.out, p)
	}
	if err := os.MkdirAll(h.dir, 0o755); err != nil {
		return fmt.Errorf("write html: %w", err)
	}
	for _, id := range slicesSortedKeys(h.cases) {
		var buf bytes.Buffer
		if err := timeline.Execute(&buf, h.cases[id]); err != nil {
			return fmt.Errorf("render case %s: %w", id, err)
		}
		if err := os.WriteFile(filepath.Join(h.dir, FileName(id)), buf.Bytes(), 0o644); err != nil {
			return fmt.Errorf("write html: %w", err)
		}
	}
	return nil
}

// FileName is the name of the page of case id: case-<id>.html when the id
// is a safe file name (a UUID is), and otherwise a name made from its hash,
// because the id comes from the event's sender and must not steer a path.
func FileName(id string) string {
	switch {
	case id == "":
		return "case-none.html"
	case safeName(id):
		return "case-" + id + ".html"
	}
	sum := sha256.Sum256([]byte(id))
	return "case-x" + hex.EncodeToString(sum[:8]) + ".html"
}

func safeName(s string) bool {
	if len(s) > 64 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
			return false
		}
	}
	return true
}

func slicesSortedKeys(m map[string]*page) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}
