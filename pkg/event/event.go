// Package event is the refbus wire format: CloudEvents 1.0 carried over NATS
// JetStream, with event data checked against JSON Schema draft 2020-12.
//
// Events are published in structured mode (application/cloudevents+json in the
// message body). Decode also accepts binary mode (ce- prefixed NATS headers)
// so that agencies using a stock CloudEvents SDK client can take part.
// Schema validation is deliberately separate from decoding: a consumer decodes
// first, so it can name the rejected event, then calls Registry.Validate.
package event

import (
	"errors"
	"fmt"
	"strconv"

	ce "github.com/cloudevents/sdk-go/v2/event"
	jsoniter "github.com/json-iterator/go"
	"github.com/nats-io/nats.go"
)

// ContentType is the media type of a structured-mode CloudEvent in JSON.
const ContentType = "application/cloudevents+json"

// Extension attribute names used by refbus.
const (
	// ExtCaseID names the case the event belongs to.
	ExtCaseID = "caseid"
	// ExtSequence orders events per referral and per sending agency. It is a
	// string of 10 digits, zero-padded, starting at 0000000001, so that it
	// sorts correctly as text and survives binary mode headers unchanged.
	ExtSequence = "sequence"
	// ExtTraceparent carries the W3C trace context of the chain of help
	// across agencies.
	ExtTraceparent = "traceparent"
)

// Header names set on published NATS messages.
const (
	headerMsgID       = nats.MsgIdHdr
	headerContentType = "Content-Type"
	headerTraceparent = "traceparent"
)

const sequenceDigits = 10

var (
	// ErrUnknownType reports an event type that has no schema in the
	// registry. It is kept apart from ErrInvalid so that a consumer may choose
	// to skip types newer than its registry rather than reject them.
	ErrUnknownType = errors.New("unknown event type")
	// ErrInvalid is wrapped by every validation failure, of the envelope or
	// of the data.
	ErrInvalid = errors.New("invalid event")
	// ErrMalformed reports a message that cannot be decoded as a CloudEvent
	// at all.
	ErrMalformed = errors.New("malformed event")
)

// MsgID is the Nats-Msg-Id used for JetStream deduplication. CloudEvents
// only promise that id is unique per source, hence both parts.
func MsgID(e *ce.Event) string {
	if e == nil {
		return ""
	}
	return e.Source() + "#" + e.ID()
}

// Encode returns the structured-mode JSON bytes of e.
func Encode(e *ce.Event) ([]byte, error) {
	if e == nil || e.Context == nil {
		return nil, errors.New("encode event: event has no context")
	}
	b, err := e.MarshalJSON()
	if err != nil {
		return nil, fmt.Errorf("encode event: %w", err)
	}
	return b, nil
}

// NewMsg encodes e in structured mode as a NATS message on subject. The
// headers carry Nats-Msg-Id for deduplication, Content-Type, and traceparent
// (when the event has one) so that tracing works without decoding the body.
func NewMsg(subject string, e *ce.Event) (*nats.Msg, error) {
	b, err := Encode(e)
	if err != nil {
		return nil, err
	}
	h := make(nats.Header, 3)
	h[headerMsgID] = []string{MsgID(e)}
	h[headerContentType] = []string{ContentType}
	if tp := stringExt(e, ExtTraceparent); tp != "" {
		h[headerTraceparent] = []string{tp}
	}
	return &nats.Msg{Subject: subject, Header: h, Data: b}, nil
}

// Data decodes the JSON data of e into v.
func Data(e *ce.Event, v any) error {
	if e == nil {
		return errors.New("decode event data: nil event")
	}
	// jsoniter decodes as encoding/json does, and faster.
	if err := jsoniter.ConfigCompatibleWithStandardLibrary.Unmarshal(e.Data(), v); err != nil {
		return fmt.Errorf("decode event data: %w", err)
	}
	return nil
}

// CaseID returns the caseid extension of e, or "" when it is absent or not a
// string.
func CaseID(e *ce.Event) string {
	return stringExt(e, ExtCaseID)
}

// Sequence returns the sequence extension of e. ok is false when the
// extension is absent or is not a valid sequence.
func Sequence(e *ce.Event) (n int64, ok bool) {
	s := stringExt(e, ExtSequence)
	if !validSequence(s) {
		return 0, false
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		return 0, false
	}
	return n, true
}

// SetSequence sets the sequence extension of e to n, zero-padded to 10
// digits. n must be between 1 and 9999999999; other values are written as
// they are and then rejected by Registry.Validate.
func SetSequence(e *ce.Event, n int64) {
	s := strconv.FormatInt(n, 10)
	if n >= 0 && len(s) < sequenceDigits {
		var buf [sequenceDigits]byte
		pad := sequenceDigits - len(s)
		for i := range pad {
			buf[i] = '0'
		}
		copy(buf[pad:], s)
		s = string(buf[:])
	}
	e.SetExtension(ExtSequence, s)
}

// validSequence reports whether s is exactly 10 ASCII digits and not zero.
func validSequence(s string) bool {
	if len(s) != sequenceDigits {
		return false
	}
	nonZero := false
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < '0' || c > '9' {
			return false
		}
		if c != '0' {
			nonZero = true
		}
	}
	return nonZero
}

// extension returns the extension name of e. It reads the v1 context
// directly because Event.Extensions copies the whole map on every call, which
// shows up on the hot path.
func extension(e *ce.Event, name string) (any, bool) {
	if e == nil || e.Context == nil {
		return nil, false
	}
	if ec, ok := e.Context.(*ce.EventContextV1); ok {
		v, ok := ec.Extensions[name]
		return v, ok
	}
	v, err := e.Context.GetExtension(name)
	return v, err == nil
}

func stringExt(e *ce.Event, name string) string {
	v, _ := extension(e, name)
	s, _ := v.(string)
	return s
}
