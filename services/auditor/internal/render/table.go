package render

import (
	"bufio"
	"bytes"
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
// case. It reads only the attributes it shows, and builds each line in one
// reused buffer: a replay of years of events spends its time reading, not
// formatting.
type Table struct {
	w   *bufio.Writer
	buf []byte
}

// NewTable writes the header line to w and returns the table.
func NewTable(w io.Writer) *Table {
	t := &Table{w: bufio.NewWriterSize(w, 64<<10)}
	b := padLeft(nil, []byte("SEQ"), seqWidth)
	for _, col := range []struct {
		name  string
		width int
	}{{"TIME", timeWidth}, {"FROM → TO", routeWidth}, {"TYPE", typeWidth}, {"REFERRAL", idWidth}, {"CASE", 0}} {
		b = pad(append(b, "  "...), []byte(col.name), col.width)
	}
	_, _ = t.w.Write(append(bytes.TrimRight(b, " "), '\n'))
	return t
}

var arrow = []byte(" → ")

// Write writes the line of m.
func (t *Table) Write(m *stream.Msg) error {
	a := m.Attrs()
	b := strconv.AppendUint(t.buf[:0], m.Seq, 10)
	if n := len(b); n < seqWidth {
		// Right-align the number: shift it and fill the front.
		b = append(b, make([]byte, seqWidth-n)...)
		copy(b[seqWidth-n:], b[:n])
		for i := range seqWidth - n {
			b[i] = ' '
		}
	}
	b = append(b, "  "...)
	start := len(b)
	b = appendTime(b, a.Raw(stream.Time))
	b = fill(b, start, timeWidth)

	b = append(b, "  "...)
	start = len(b)
	if from, to := m.Route(); from != "" {
		b = appendClean(b, from)
		b = append(b, arrow...)
		b = appendClean(b, to)
	} else {
		b = appendClean(b, m.Subject)
	}
	b = fill(b, start, routeWidth)

	b = append(b, "  "...)
	start = len(b)
	typ := bytes.TrimPrefix(a.Raw(stream.Type), []byte(namespace))
	if len(typ) == 0 && a.Err != nil {
		typ = []byte("(unreadable)")
	}
	b = appendClean(b, typ)
	b = fill(b, start, typeWidth)

	b = append(b, "  "...)
	start = len(b)
	b = appendClean(b, a.Raw(stream.Subject))
	b = fill(b, start, idWidth)

	b = append(b, "  "...)
	b = appendClean(b, a.Raw(stream.CaseID))
	b = append(bytes.TrimRight(b, " "), '\n')
	t.buf = b
	_, err := t.w.Write(b)
	return err
}

// Close flushes the table.
func (t *Table) Close() error { return t.w.Flush() }

// fill pads the column that starts at b[start] to width runes.
func fill(b []byte, start, width int) []byte {
	for n := utf8.RuneCount(b[start:]); n < width; n++ {
		b = append(b, ' ')
	}
	return b
}

func pad(b, s []byte, width int) []byte {
	start := len(b)
	return fill(appendClean(b, s), start, width)
}

func padLeft(b, s []byte, width int) []byte {
	for n := len(s); n < width; n++ {
		b = append(b, ' ')
	}
	return append(b, s...)
}

// appendClean appends a value that an event's sender chose, with control
// characters turned into '?' so that it cannot break the table or drive the
// terminal.
func appendClean[T string | []byte](b []byte, s T) []byte {
	start := len(b)
	b = append(b, s...)
	for i := start; i < len(b); i++ {
		if b[i] < 0x20 || b[i] == 0x7f {
			b[i] = '?'
		}
	}
	return b
}

// appendTime appends an event time in UTC to the millisecond. A time
// already in UTC ("Z") is rewritten as text, which is much cheaper than
// parsing it; anything else goes through time.Parse, and what does not
// parse is shown as it is ("-" when absent).
func appendTime(b, raw []byte) []byte {
	if len(raw) == 0 {
		return append(b, '-')
	}
	if utcShape(raw) {
		b = append(b, raw[:19]...)
		b = append(b, '.')
		frac := raw[19 : len(raw)-1]
		if len(frac) > 0 {
			frac = frac[1:] // the '.'
		}
		for i := range 3 {
			if i < len(frac) {
				b = append(b, frac[i])
			} else {
				b = append(b, '0')
			}
		}
		return append(b, 'Z')
	}
	t, err := time.Parse(time.RFC3339Nano, string(raw))
	if err != nil {
		return appendClean(b, raw)
	}
	return t.UTC().AppendFormat(b, timeLayout)
}

// utcShape reports whether raw reads YYYY-MM-DDTHH:MM:SS[.fraction]Z with
// digits in their places and plausible fields.
func utcShape(raw []byte) bool {
	n := len(raw)
	if n < 20 || raw[n-1] != 'Z' || raw[4] != '-' || raw[7] != '-' || raw[10] != 'T' || raw[13] != ':' || raw[16] != ':' {
		return false
	}
	for _, i := range []int{0, 1, 2, 3, 5, 6, 8, 9, 11, 12, 14, 15, 17, 18} {
		if raw[i] < '0' || raw[i] > '9' {
			return false
		}
	}
	if n > 20 {
		if raw[19] != '.' || n == 21 {
			return false
		}
		for _, c := range raw[20 : n-1] {
			if c < '0' || c > '9' {
				return false
			}
		}
	}
	two := func(i int) int { return int(raw[i]-'0')*10 + int(raw[i+1]-'0') }
	return two(5) >= 1 && two(5) <= 12 && two(8) >= 1 && two(8) <= 31 && two(11) <= 23 && two(14) <= 59 && two(17) <= 60
}
