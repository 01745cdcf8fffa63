package stream

import (
	"bytes"
	"encoding/json"
	"errors"
	"strings"

	"github.com/nats-io/nats.go"

	"github.com/refbus/refbus/pkg/event"
)

// Attrs are the CloudEvents attributes an auditor shows, read from a message
// without decoding the whole event. They are what the message says, not
// what a valid event would say: verification decodes fully (event.Decode).
type Attrs struct {
	ID, Source, Type, Subject, Time string
	// CaseID and Sequence are the refbus extensions.
	CaseID, Sequence string
	// Data is the event's data as raw JSON: a slice of the message body.
	Data []byte
	// Binary is true for a binary-mode message (attributes in ce- headers).
	Binary bool
	// Err says why the attributes could not be read; the fields read
	// before the problem are kept.
	Err error
}

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
		if p := a.field(strings.ToLower(k[len(binaryPrefix):])); p != nil {
			*p = v[0]
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

func (a *Attrs) field(name string) *string { return a.fieldBytes([]byte(name)) }

func (a *Attrs) fieldBytes(name []byte) *string {
	switch string(name) {
	case "id":
		return &a.ID
	case "source":
		return &a.Source
	case "type":
		return &a.Type
	case "subject":
		return &a.Subject
	case "time":
		return &a.Time
	case event.ExtCaseID:
		return &a.CaseID
	case event.ExtSequence:
		return &a.Sequence
	}
	return nil
}

// scanJSON reads the top-level members of a JSON object, keeping the
// attributes and the raw data and skipping everything else. It checks only
// as much syntax as it needs to find its way.
func scanJSON(b []byte, a *Attrs) error {
	i := skipSpace(b, 0)
	if i >= len(b) || b[i] != '{' {
		return errNotObject
	}
	i = skipSpace(b, i+1)
	if i < len(b) && b[i] == '}' {
		return nil
	}
	for {
		if i >= len(b) || b[i] != '"' {
			return errSyntax
		}
		end, esc, err := stringEnd(b, i)
		if err != nil {
			return err
		}
		key := b[i : end+1]
		i = skipSpace(b, end+1)
		if i >= len(b) || b[i] != ':' {
			return errSyntax
		}
		i = skipSpace(b, i+1)
		if i >= len(b) {
			return errSyntax
		}
		start := i
		if i, err = skipValue(b, i); err != nil {
			return err
		}
		name := key[1 : len(key)-1]
		if esc {
			name = []byte(unquote(key))
		}
		// Converting in the comparison does not allocate.
		if string(name) == "data" {
			a.Data = b[start:i]
		} else if p := a.fieldBytes(name); p != nil {
			*p = value(b[start:i])
		}
		i = skipSpace(b, i)
		if i >= len(b) {
			return errSyntax
		}
		switch b[i] {
		case ',':
			i = skipSpace(b, i+1)
		case '}':
			return nil
		default:
			return errSyntax
		}
	}
}

var errSyntax = errors.New("body is not valid JSON")

// value renders a raw JSON value as text: a string unquoted, anything else
// as it is written.
func value(raw []byte) string {
	if len(raw) >= 2 && raw[0] == '"' {
		if bytes.IndexByte(raw, '\\') < 0 {
			return string(raw[1 : len(raw)-1])
		}
		return unquote(raw)
	}
	return string(raw)
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
