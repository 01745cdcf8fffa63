package event

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	ce "github.com/cloudevents/sdk-go/v2/event"
	"github.com/nats-io/nats.go"
)

// binaryPrefix marks CloudEvents attributes in binary mode NATS headers.
const binaryPrefix = "ce-"

// Decode reads an event from the header and body of a NATS message.
//
// The message is in structured mode when its Content-Type starts with
// application/cloudevents+json, or when it has no ce-specversion header; the
// body must then be a JSON CloudEvent. Otherwise it is in binary mode, as
// sent by a CloudEvents SDK client: attributes and extensions come from ce-
// headers, datacontenttype from Content-Type (or ce-datacontenttype, which the
// Go SDK writes), and the data is the body. Header names are matched without
// regard to case, because NATS headers are case-sensitive and clients differ.
//
// In binary mode the event's data aliases body. Errors wrap ErrMalformed and
// say what is wrong. Decode does not check the data against its schema;
// callers do that with Registry.Validate.
func Decode(h nats.Header, body []byte) (*ce.Event, error) {
	var contentType string
	binary := false
	for k, v := range h {
		if len(v) == 0 {
			continue
		}
		switch {
		case strings.EqualFold(k, headerContentType):
			contentType = v[0]
		case strings.EqualFold(k, binaryPrefix+"specversion"):
			binary = true
		}
	}
	if hasPrefixFold(contentType, ContentType) {
		binary = false
	}
	if binary {
		return decodeBinary(h, contentType, body)
	}
	return decodeStructured(body)
}

func decodeStructured(body []byte) (*ce.Event, error) {
	if len(body) == 0 {
		return nil, fmt.Errorf("%w: body is empty", ErrMalformed)
	}
	// The SDK's decoder is lenient (it ignores trailing garbage, for one), so
	// the body is checked first: what we accept, we can also re-encode.
	if !json.Valid(body) {
		return nil, fmt.Errorf("%w: body is not JSON", ErrMalformed)
	}
	if bytes.TrimLeft(body, " \t\r\n")[0] != '{' {
		return nil, fmt.Errorf("%w: body is not a JSON object", ErrMalformed)
	}
	e := &ce.Event{}
	if err := e.UnmarshalJSON(body); err != nil {
		var fields ce.ValidationError
		if errors.As(err, &fields) && len(fields) == 1 && fields["specversion"] != nil {
			return nil, fmt.Errorf("%w: missing specversion attribute", ErrMalformed)
		}
		return nil, fmt.Errorf("%w: body is not a CloudEvent: %s", ErrMalformed, describe(err))
	}
	if v := e.SpecVersion(); v != ce.CloudEventsVersionV1 {
		return nil, fmt.Errorf("%w: unsupported specversion %q, want %s", ErrMalformed, v, ce.CloudEventsVersionV1)
	}
	switch {
	case strings.TrimSpace(e.ID()) == "":
		return nil, fmt.Errorf("%w: missing id attribute", ErrMalformed)
	case strings.TrimSpace(e.Source()) == "":
		return nil, fmt.Errorf("%w: missing source attribute", ErrMalformed)
	case strings.TrimSpace(e.Type()) == "":
		return nil, fmt.Errorf("%w: missing type attribute", ErrMalformed)
	}
	return e, nil
}

func decodeBinary(h nats.Header, contentType string, body []byte) (*ce.Event, error) {
	e := ce.New()
	var ceContentType string
	// Map order is random; reporting the first bad header found would make
	// the error vary between deliveries, so problems are collected.
	var problems []string
	for k, v := range h {
		if len(v) == 0 || len(k) <= len(binaryPrefix) || !strings.EqualFold(k[:len(binaryPrefix)], binaryPrefix) {
			continue
		}
		name := strings.ToLower(k[len(binaryPrefix):])
		val := v[0]
		switch name {
		case "specversion":
			if val != ce.CloudEventsVersionV1 {
				problems = append(problems, fmt.Sprintf("unsupported ce-specversion %q, want %s", val, ce.CloudEventsVersionV1))
			}
		case "id":
			e.SetID(val)
		case "source":
			e.SetSource(val)
		case "type":
			e.SetType(val)
		case "subject":
			e.SetSubject(val)
		case "time":
			t, err := time.Parse(time.RFC3339Nano, val)
			if err != nil {
				problems = append(problems, fmt.Sprintf("ce-time %q is not an RFC 3339 timestamp", val))
				continue
			}
			e.SetTime(t)
		case "dataschema":
			e.SetDataSchema(val)
		case "datacontenttype":
			ceContentType = val
		default:
			if !ce.IsExtensionNameValid(name) {
				problems = append(problems, fmt.Sprintf("header %q is not a valid extension name", k))
				continue
			}
			e.SetExtension(name, val)
		}
	}
	for _, field := range slices.Sorted(maps.Keys(e.FieldErrors)) {
		if field == "id" {
			// An empty ce-id is reported as missing below.
			continue
		}
		header := binaryPrefix + strings.TrimPrefix(field, "extension:")
		problems = append(problems, fmt.Sprintf("invalid %s header: %v", header, e.FieldErrors[field]))
	}
	slices.Sort(problems)
	for _, attr := range []struct{ name, val string }{{"id", e.ID()}, {"source", e.Source()}, {"type", e.Type()}} {
		if _, invalid := e.FieldErrors[attr.name]; invalid && attr.name != "id" {
			continue
		}
		if strings.TrimSpace(attr.val) == "" {
			problems = append(problems, "missing ce-"+attr.name+" header")
		}
	}
	if len(problems) > 0 {
		return nil, fmt.Errorf("%w: %s", ErrMalformed, strings.Join(problems, "; "))
	}
	e.FieldErrors = nil

	if contentType == "" {
		contentType = ceContentType
	}
	e.SetDataContentType(contentType)
	if len(body) > 0 {
		// Anything but JSON data is rejected by Validate anyway; checking
		// here keeps a decoded event safe to re-encode in structured mode,
		// where JSON data is written verbatim.
		if mt := e.DataMediaType(); (mt == "" || mt == ce.ApplicationJSON) && !json.Valid(body) {
			return nil, fmt.Errorf("%w: body is not JSON", ErrMalformed)
		}
		e.DataEncoded = body
	}
	return &e, nil
}

// describe renders an SDK error on one line, in a stable order.
func describe(err error) string {
	var fields ce.ValidationError
	if !errors.As(err, &fields) {
		return err.Error()
	}
	parts := make([]string, 0, len(fields))
	for _, k := range slices.Sorted(maps.Keys(fields)) {
		parts = append(parts, k+": "+fields[k].Error())
	}
	return strings.Join(parts, "; ")
}

func hasPrefixFold(s, prefix string) bool {
	return len(s) >= len(prefix) && strings.EqualFold(s[:len(prefix)], prefix)
}
