package render

import (
	"bufio"
	"io"
	"strconv"
	"time"
	"unicode/utf8"

	"github.com/refbus/refbus/services/auditor/internal/stream"
)

// Column widths of the table; a longer value pushes the rest of its line.
const (
	seqWidth   = 9
	timeWidth  = len(timeLayout)
	routeWidth = 21
	typeWidth  = 24
	idWidth    = 36
)

// Table writes one line per event: stream sequence, event time, sender ->
// receiver (from the subject), type, referral (the event's subject) and
// case. It reads only the attributes it shows.
type Table struct {
	w   *bufio.Writer
	buf []byte
}

// NewTable writes the header line to w and returns the table.
func NewTable(w io.Writer) *Table {
	t := &Table{w: bufio.NewWriterSize(w, 64<<10)}
	t.buf = t.line(t.buf[:0], "SEQ", "TIME", "FROM → TO", "TYPE", "REFERRAL", "CASE")
	_, _ = t.w.Write(t.buf)
	return t
}

// Write writes the line of m.
func (t *Table) Write(m *stream.Msg) error {
	a := m.Attrs()
	from, to := m.Route()
	route := from + " → " + to
	if from == "" {
		route = m.Subject
	}
	typ := shortType(a.Type)
	if a.Err != nil && typ == "" {
		typ = "(unreadable)"
	}
	t.buf = t.line(t.buf[:0], strconv.FormatUint(m.Seq, 10), tableTime(a.Time), route, typ, a.Subject, a.CaseID)
	_, err := t.w.Write(t.buf)
	return err
}

// Close flushes the table.
func (t *Table) Close() error { return t.w.Flush() }

func (t *Table) line(b []byte, seq, tm, route, typ, ref, cs string) []byte {
	b = padLeft(b, seq, seqWidth)
	b = append(b, "  "...)
	b = pad(b, tm, timeWidth)
	b = append(b, "  "...)
	b = pad(b, route, routeWidth)
	b = append(b, "  "...)
	b = pad(b, typ, typeWidth)
	b = append(b, "  "...)
	b = pad(b, ref, idWidth)
	b = append(b, "  "...)
	b = append(b, clean(cs)...)
	// Trailing blanks of empty last columns would only upset diffs.
	for len(b) > 0 && b[len(b)-1] == ' ' {
		b = b[:len(b)-1]
	}
	return append(b, '\n')
}

// tableTime is eventTime without the allocation of Format.
func tableTime(s string) string {
	if s == "" {
		return "-"
	}
	tm, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		return s
	}
	var b [len(timeLayout)]byte
	return string(tm.UTC().AppendFormat(b[:0], timeLayout))
}

func pad(b []byte, s string, width int) []byte {
	s = clean(s)
	b = append(b, s...)
	for n := utf8.RuneCountInString(s); n < width; n++ {
		b = append(b, ' ')
	}
	return b
}

func padLeft(b []byte, s string, width int) []byte {
	for n := len(s); n < width; n++ {
		b = append(b, ' ')
	}
	return append(b, s...)
}

// clean keeps a value that an event's sender chose from breaking the table
// or driving the terminal: control characters become '?'.
func clean(s string) string {
	for i := 0; i < len(s); i++ {
		if s[i] < 0x20 || s[i] == 0x7f {
			return cleanSlow(s)
		}
	}
	return s
}

func cleanSlow(s string) string {
	b := []byte(s)
	for i, c := range b {
		if c < 0x20 || c == 0x7f {
			b[i] = '?'
		}
	}
	return string(b)
}
