package stream

import (
	"bytes"
	"encoding/json"
	"errors"
	"strings"
	"unicode/utf8"

	"github.com/nats-io/nats.go"

	"github.com/refbus/refbus/pkg/event"
)

// Attrs are the CloudEvents attributes an auditor shows, read from a message
// without decoding the whole event. They are what the message says, not
// what a valid event would say: verification decodes fully (event.Decode).
//
// The values are kept as slices of the message body, so that a replay to a
// table allocates nothing for them; the methods return them as strings.
type Attrs struct {
	raw [numFields][]byte
	// Data is the event's data as raw JSON: a slice of the message body.
	Data []byte
	// Binary is true for a binary-mode message (attributes in ce- headers).
	Binary bool
	// Err says why the attributes could not be read; the fields read
	// before the problem are kept.
	Err error
}

// Field names an attribute.
type Field int

// The attributes Attrs keeps.
const (
	ID Field = iota
	Source
	Type
	Subject
	Time
	CaseID   // the caseid extension
	Sequence // the sequence extension
	numFields
)

// Raw returns attribute f as it is written (unquoted), nil if absent. The
// slice aliases the message: do not change it.
func (a *Attrs) Raw(f Field) []byte { return a.raw[f] }

// Is reports whether attribute f is s, without allocating.
func (a *Attrs) Is(f Field, s string) bool { return string(a.raw[f]) == s }

// ID returns the id attribute.
func (a *Attrs) ID() string { return string(a.raw[ID]) }

// Source returns the source attribute.
func (a *Attrs) Source() string { return string(a.raw[Source]) }

// Type returns the type attribute.
func (a *Attrs) Type() string { return string(a.raw[Type]) }

// Subject returns the subject attribute: the referral id.
func (a *Attrs) Subject() string { return string(a.raw[Subject]) }

// Time returns the time attribute as written.
func (a *Attrs) Time() string { return string(a.raw[Time]) }

// CaseID returns the caseid extension.
func (a *Attrs) CaseID() string { return string(a.raw[CaseID]) }

var errNotObject = errors.New("body is not a JSON object")

const binaryPrefix = "ce-"

// scan reads the attributes of a message in structured or binary mode, the
// way event.Decode tells them apart.
func scan(h nats.Header, body []byte) Attrs {
	var a Attrs
	if !binary(h) {
		a.Err = scanJSON(body, &a)
		return a
	}
	a.Binary, a.Data = true, body
	for k, v := range h {
		if len(v) == 0 || len(k) <= len(binaryPrefix) || !strings.EqualFold(k[:len(binaryPrefix)], binaryPrefix) {
			continue
		}
		if f, ok := fieldOf([]byte(strings.ToLower(k[len(binaryPrefix):]))); ok {
			a.raw[f] = []byte(v[0])
		}
	}
	return a
}

// binary reports whether a message is in binary mode: it has a
// ce-specversion header and no structured Content-Type.
func binary(h nats.Header) bool {
	if len(h) == 0 {
		return false
	}
	// The relay's messages answer on the first lookup.
	if ct, ok := h["Content-Type"]; ok && len(ct) > 0 && hasPrefixFold(ct[0], event.ContentType) {
		return false
	}
	spec, structured := false, false
	for k, v := range h {
		if len(v) == 0 {
			continue
		}
		switch {
		case strings.EqualFold(k, "Content-Type"):
			structured = hasPrefixFold(v[0], event.ContentType)
		case strings.EqualFold(k, "ce-specversion"):
			spec = true
		}
	}
	return spec && !structured
}

func fieldOf(name []byte) (Field, bool) {
	// Converting in the switch does not allocate.
	switch string(name) {
	case "id":
		return ID, true
	case "source":
		return Source, true
	case "type":
		return Type, true
	case "subject":
		return Subject, true
	case "time":
		return Time, true
	case event.ExtCaseID:
		return CaseID, true
	case event.ExtSequence:
		return Sequence, true
	}
	return 0, false
}

// scanJSON reads the top-level members of a JSON object, keeping the
// attributes and the raw data and skipping everything else. It checks only
// as much syntax as it needs to find its way.
func scanJSON(b []byte, a *Attrs) error {
	return members(b, func(key, val []byte) {
		if string(key) == "data" {
			a.Data = val
		} else if f, ok := fieldOf(key); ok {
			a.raw[f] = val
		}
	})
}

var errSyntax = errors.New("body is not valid JSON")

// value returns a raw JSON value as text: a string without its quotes
// (decoded into a new slice if it has escapes or bytes that are not UTF-8,
// which decoding replaces, as encoding/json does), anything else as written.
func value(raw []byte) []byte {
	if len(raw) >= 2 && raw[0] == '"' {
		s := raw[1 : len(raw)-1]
		if bytes.IndexByte(s, '\\') < 0 && utf8.Valid(s) {
			return s
		}
		return []byte(unquote(raw))
	}
	return raw
}

func unquote(raw []byte) string {
	var s string
	if err := json.Unmarshal(raw, &s); err != nil {
		return string(raw)
	}
	return s
}

func skipSpace(b []byte, i int) int {
	for i < len(b) {
		switch b[i] {
		case ' ', '\t', '\n', '\r':
			i++
		default:
			return i
		}
	}
	return i
}

// stringEnd returns the index of the quote that closes the string opening
// at b[i], and whether the string has escapes.
func stringEnd(b []byte, i int) (end int, esc bool, err error) {
	j := i + 1
	for {
		k := bytes.IndexByte(b[j:], '"')
		if k < 0 {
			return 0, false, errSyntax
		}
		q := j + k
		// The quote is escaped if an odd number of backslashes precede it.
		n := 0
		for p := q - 1; p > i && b[p] == '\\'; p-- {
			n++
		}
		if n > 0 {
			esc = true
		}
		if n%2 == 0 {
			if !esc {
				esc = bytes.IndexByte(b[i+1:q], '\\') >= 0
			}
			return q, esc, nil
		}
		j = q + 1
	}
}

// skipValue returns the index just after the JSON value starting at b[i].
func skipValue(b []byte, i int) (int, error) {
	switch b[i] {
	case '"':
		end, _, err := stringEnd(b, i)
		return end + 1, err
	case '{', '[':
		depth := 0
		for i < len(b) {
			switch b[i] {
			case '"':
				end, _, err := stringEnd(b, i)
				if err != nil {
					return 0, err
				}
				i = end
			case '{', '[':
				depth++
			case '}', ']':
				depth--
				if depth == 0 {
					return i + 1, nil
				}
			}
			i++
		}
		return 0, errSyntax
	default:
		j := i
		for j < len(b) {
			switch b[j] {
			case ',', '}', ']', ' ', '\t', '\n', '\r':
				if j == i {
					return 0, errSyntax
				}
				return j, nil
			}
			j++
		}
		return 0, errSyntax
	}
}

func hasPrefixFold(s, prefix string) bool {
	return len(s) >= len(prefix) && strings.EqualFold(s[:len(prefix)], prefix)
}

// ScanBody reads the attributes of a structured-mode event body, such as
// one kept in an outbox.
func ScanBody(body []byte) Attrs {
	var a Attrs
	a.Err = scanJSON(body, &a)
	return a
}

// members calls fn with the key and raw value of every top-level member of
// the JSON object obj, string values unquoted; it stops at the first syntax
// problem and returns it. It spares a decode through reflection where a
// few string members are all that is wanted.
func members(obj []byte, fn func(key, value []byte)) error {
	i := skipSpace(obj, 0)
	if i >= len(obj) || obj[i] != '{' {
		return errNotObject
	}
	i = skipSpace(obj, i+1)
	if i < len(obj) && obj[i] == '}' {
		return nil
	}
	for {
		if i >= len(obj) || obj[i] != '"' {
			return errSyntax
		}
		end, esc, err := stringEnd(obj, i)
		if err != nil {
			return err
		}
		key := obj[i+1 : end]
		if esc {
			key = []byte(unquote(obj[i : end+1]))
		}
		i = skipSpace(obj, end+1)
		if i >= len(obj) || obj[i] != ':' {
			return errSyntax
		}
		i = skipSpace(obj, i+1)
		if i >= len(obj) {
			return errSyntax
		}
		start := i
		if i, err = skipValue(obj, i); err != nil {
			return err
		}
		fn(key, value(obj[start:i]))
		i = skipSpace(obj, i)
		if i >= len(obj) {
			return errSyntax
		}
		switch obj[i] {
		case ',':
			i = skipSpace(obj, i+1)
		case '}':
			return nil
		default:
			return errSyntax
		}
	}
}
