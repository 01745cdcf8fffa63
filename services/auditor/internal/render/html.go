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

	"github.com/refbus/refbus/pkg/receipt"
	"github.com/refbus/refbus/schemas"
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
// a case, a node or a range.
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
	Nodes     []string
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

// data is an event's data, decoded with the contract's type for its event
// type: what a timeline puts into words. Only the field of the event's
// type is set.
type data struct {
	requested schemas.Requested
	receipt   receipt.Data
	move      schemas.MoveFields
	overdue   schemas.Overdue
}

// readData decodes raw, the data of an event of type typ. Data that does
// not decode leaves its fields empty: the event is still shown, as stored.
func readData(typ string, raw []byte) data {
	var d data
	var v any
	switch {
	case typ == schemas.TypeRequested:
		v = &d.requested
	case typ == receipt.Type:
		v = &d.receipt
	case typ == schemas.TypeOverdue:
		v = &d.overdue
	case isMove(typ):
		v = &d.move
	default:
		return d
	}
	_ = json.Unmarshal(raw, v)
	return d
}

func isMove(typ string) bool {
	_, ok := schemas.MoveOf(typ)
	return ok
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
	d := readData(a.Type(), a.Data)
	e := entry{
		Seq: m.Seq, Time: eventTime(a.Time()), From: from, To: to, Type: shortType(a.Type()),
		Referral: a.Subject(), ID: a.ID(), Source: a.Source(), JSON: indent(m.Data),
	}
	if e.Time == "" {
		e.Time = "(no time)"
	}
	e.Kind, e.Summary = describe(a, from, to, d)
	p.Events = append(p.Events, e)
	for _, node := range []string{from, to} {
		if node != "" && !slices.Contains(p.Nodes, node) {
			p.Nodes = append(p.Nodes, node)
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
	switch typ := a.Type(); {
	case typ == schemas.TypeRequested:
		r.From, r.To, r.Service, r.Status = from, to, d.requested.Service, "requested"
	case typ == receipt.Type && d.receipt.EventType == schemas.TypeRequested:
		switch {
		case d.receipt.Outcome != receipt.Applied:
			r.Status = "refused on delivery"
		case r.Status == "requested":
			r.Status = "received"
		}
	case typ == schemas.TypeOverdue || isMove(typ):
		r.Status = verb(typ)
	}
}

// describe puts an event into words.
func describe(a *stream.Attrs, from, to string, d data) (kind, summary string) {
	switch typ := a.Type(); {
	case a.Err != nil && typ == "":
		return "unreadable", "The message could not be read as an event: " + a.Err.Error() + "."
	case typ == schemas.TypeRequested:
		s := fmt.Sprintf("%s refers the case to %s for %q", from, d.requested.ToAgency, d.requested.Service)
		if p := d.requested.ParentID; p != nil {
			s += ", forwarding referral " + p.String()
		}
		return "requested", s + "."
	case typ == receipt.Type:
		s := fmt.Sprintf("%s confirms delivery of the %s event: %s.", from, shortType(d.receipt.EventType), d.receipt.Outcome)
		if d.receipt.Reason != "" {
			s += " Reason: " + d.receipt.Reason
		}
		return "receipt", s
	case typ == schemas.TypeOverdue:
		o := &d.overdue
		return "move", fmt.Sprintf("%s notes that the %s deadline of the referral from %s to %s for %q passed at %s.",
			from, o.Kind, o.FromAgency, o.ToAgency, o.Service, o.DueAt.UTC().Format(timeLayout))
	case isMove(typ):
		m := &d.move
		s := fmt.Sprintf("%s %s the referral", from, verb(typ))
		if m.ReasonCode != "" {
			s += " (" + m.ReasonCode + ")"
		}
		if m.ToAgency != "" {
			s += " to " + m.ToAgency
		}
		for _, part := range []string{m.Reason, m.Outcome} {
			if part != "" {
				s += ": " + part
			}
		}
		return "move", s + "."
	}
	return "other", fmt.Sprintf("%s sent %s to %s.", from, a.Type(), to)
}

// verb returns the word a referral event type is named for, the last
// before its version (org.refbus.referral.accepted.v1: accepted).
func verb(t string) string {
	if i := strings.LastIndex(t, ".v"); i > 0 {
		t = t[:i]
	}
	return strings.ReplaceAll(t[strings.LastIndex(t, ".")+1:], "_", " ")
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
