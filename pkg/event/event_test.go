package event

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"
	"testing/fstest"
	"time"

	"github.com/cloudevents/sdk-go/v2/binding"
	"github.com/cloudevents/sdk-go/v2/binding/spec"
	ce "github.com/cloudevents/sdk-go/v2/event"
	"github.com/nats-io/nats.go"
)

const (
	typeRequested   = "org.refbus.referral.requested.v1"
	schemaRequested = "https://schemas.refbus.org/referral.requested.v1.json"
	testSource      = "urn:refbus:agency:health"
	testTraceparent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
)

type referral struct {
	ReferralID string `json:"referral_id"`
	FromAgency string `json:"from_agency"`
	ToAgency   string `json:"to_agency"`
	Note       string `json:"note"`
	Urgency    int    `json:"urgency,omitempty"`
}

var validReferral = referral{
	ReferralID: "R-000123",
	FromAgency: "health",
	ToAgency:   "housing",
	Note:       "family needs emergency accommodation",
	Urgency:    2,
}

func newRegistry(t testing.TB) *Registry {
	t.Helper()
	r, err := NewRegistry(os.DirFS("testdata"))
	if err != nil {
		t.Fatalf("NewRegistry: %v", err)
	}
	return r
}

func newEvent(t testing.TB, r *Registry) *ce.Event {
	t.Helper()
	e, err := r.New(testSource, typeRequested, "referral/R-000123", validReferral)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	e.SetExtension(ExtCaseID, "C-2024-0042")
	e.SetExtension(ExtTraceparent, testTraceparent)
	SetSequence(e, 7)
	return e
}

func TestNewRegistry(t *testing.T) {
	r := newRegistry(t)
	if got, want := r.Types(), []string{typeRequested}; !slices.Equal(got, want) {
		t.Errorf("Types() = %v, want %v", got, want)
	}
	if id, ok := r.SchemaID(typeRequested); !ok || id != schemaRequested {
		t.Errorf("SchemaID(%q) = %q, %v; want %q, true", typeRequested, id, ok, schemaRequested)
	}
	// common.json has no event type: it is a resource only.
	if _, ok := r.SchemaID(""); ok {
		t.Error("SchemaID(\"\") found a schema")
	}
}

func TestNewRegistryErrors(t *testing.T) {
	common, err := os.ReadFile("testdata/common.json")
	if err != nil {
		t.Fatal(err)
	}
	requested, err := os.ReadFile("testdata/referral.requested.v1.json")
	if err != nil {
		t.Fatal(err)
	}
	file := func(s string) *fstest.MapFile { return &fstest.MapFile{Data: []byte(s)} }
	tests := []struct {
		name string
		fsys fstest.MapFS
		want string
	}{
		{
			name: "duplicate type",
			fsys: fstest.MapFS{
				"common.json": {Data: common},
				"a/one.json":  {Data: requested},
				"b/two.json": file(`{"$id": "https://schemas.refbus.org/two.json",
					"x-cloudevents-type": "org.refbus.referral.requested.v1"}`),
			},
			want: "described by both",
		},
		{
			name: "missing $id",
			fsys: fstest.MapFS{"x.json": file(`{"x-cloudevents-type": "a.b"}`)},
			want: `"$id" must be an absolute URI`,
		},
		{
			name: "relative $id",
			fsys: fstest.MapFS{"x.json": file(`{"$id": "x.json"}`)},
			want: `"$id" must be an absolute URI`,
		},
		{
			name: "type not a string",
			fsys: fstest.MapFS{"x.json": file(`{"$id": "https://x/x.json", "x-cloudevents-type": 3}`)},
			want: `"x-cloudevents-type" must be a non-empty string`,
		},
		{
			name: "not JSON",
			fsys: fstest.MapFS{"x.json": file(`{"$id": `)},
			want: "x.json: parse",
		},
		{
			// Without common.json the $ref cannot be resolved, and must not
			// be looked for on disk or on the network.
			name: "unresolved ref",
			fsys: fstest.MapFS{"r.json": {Data: requested}},
			want: "compile schema r.json",
		},
		{
			name: "duplicate $id",
			fsys: fstest.MapFS{"a.json": {Data: common}, "b.json": {Data: common}},
			want: "b.json",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := NewRegistry(tt.fsys)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("NewRegistry error = %v, want it to contain %q", err, tt.want)
			}
		})
	}
}

func TestRoundTrip(t *testing.T) {
	r := newRegistry(t)
	e := newEvent(t, r)

	if err := r.Validate(e); err != nil {
		t.Fatalf("Validate: %v", err)
	}
	if e.SpecVersion() != "1.0" || e.DataContentType() != "application/json" || e.DataSchema() != schemaRequested {
		t.Errorf("New set specversion %q, datacontenttype %q, dataschema %q", e.SpecVersion(), e.DataContentType(), e.DataSchema())
	}
	if e.Time().Location() != time.UTC || time.Since(e.Time()) > time.Minute {
		t.Errorf("New set time %v, want now in UTC", e.Time())
	}
	// UUIDv7: version nibble 7.
	if len(e.ID()) != 36 || e.ID()[14] != '7' {
		t.Errorf("New set id %q, want a UUIDv7", e.ID())
	}

	msg, err := NewMsg("refbus.referral.housing", e)
	if err != nil {
		t.Fatalf("NewMsg: %v", err)
	}
	if msg.Subject != "refbus.referral.housing" {
		t.Errorf("subject = %q", msg.Subject)
	}
	wantHeaders := nats.Header{
		"Nats-Msg-Id":  {testSource + "#" + e.ID()},
		"Content-Type": {ContentType},
		"traceparent":  {testTraceparent},
	}
	if !reflect.DeepEqual(msg.Header, wantHeaders) {
		t.Errorf("headers = %v, want %v", msg.Header, wantHeaders)
	}
	if got := MsgID(e); got != msg.Header.Get(nats.MsgIdHdr) {
		t.Errorf("MsgID = %q, header has %q", got, msg.Header.Get(nats.MsgIdHdr))
	}

	got, err := Decode(msg.Header, msg.Data)
	if err != nil {
		t.Fatalf("Decode: %v", err)
	}
	assertSameEvent(t, got, e)
	if err := r.Validate(got); err != nil {
		t.Fatalf("Validate decoded: %v", err)
	}
	if CaseID(got) != "C-2024-0042" {
		t.Errorf("CaseID = %q", CaseID(got))
	}
	var data referral
	if err := Data(got, &data); err != nil {
		t.Fatalf("Data: %v", err)
	}
	if data != validReferral {
		t.Errorf("Data = %+v, want %+v", data, validReferral)
	}

	// Structured mode must not depend on the Content-Type header: it is the
	// default when there is no ce-specversion header.
	got, err = Decode(nil, msg.Data)
	if err != nil {
		t.Fatalf("Decode without headers: %v", err)
	}
	assertSameEvent(t, got, e)
}

func assertSameEvent(t *testing.T, got, want *ce.Event) {
	t.Helper()
	check := func(attr string, g, w any) {
		t.Helper()
		if !reflect.DeepEqual(g, w) {
			t.Errorf("%s = %#v, want %#v", attr, g, w)
		}
	}
	check("specversion", got.SpecVersion(), want.SpecVersion())
	check("id", got.ID(), want.ID())
	check("source", got.Source(), want.Source())
	check("type", got.Type(), want.Type())
	check("subject", got.Subject(), want.Subject())
	check("datacontenttype", got.DataContentType(), want.DataContentType())
	check("dataschema", got.DataSchema(), want.DataSchema())
	check("extensions", got.Extensions(), want.Extensions())
	if !got.Time().Equal(want.Time()) {
		t.Errorf("time = %v, want %v", got.Time(), want.Time())
	}
	if !jsonEqual(got.Data(), want.Data()) {
		t.Errorf("data = %s, want %s", got.Data(), want.Data())
	}
}

func jsonEqual(a, b []byte) bool {
	var x, y any
	if json.Unmarshal(a, &x) != nil || json.Unmarshal(b, &y) != nil {
		return false
	}
	return reflect.DeepEqual(x, y)
}

func TestDecodeBinary(t *testing.T) {
	r := newRegistry(t)
	data := `{"referral_id":"R-000456","from_agency":"education","to_agency":"health","note":"school nurse referral"}`
	when := time.Date(2025, 3, 14, 9, 26, 53, 589793000, time.UTC)
	// As the Go SDK's NATS JetStream binary writer sends it: lower-case ce-
	// headers, datacontenttype as ce-datacontenttype, time as RFC 3339 nano.
	sdkHeaders := nats.Header{
		"ce-specversion":     {"1.0"},
		"ce-id":              {"b7f1c9e2-0000-4000-8000-000000000001"},
		"ce-source":          {"urn:refbus:agency:education"},
		"ce-type":            {typeRequested},
		"ce-subject":         {"referral/R-000456"},
		"ce-time":            {when.Format(time.RFC3339Nano)},
		"ce-dataschema":      {schemaRequested},
		"ce-datacontenttype": {"application/json"},
		"ce-caseid":          {"C-2025-0001"},
		"ce-sequence":        {"0000000012"},
		"ce-traceparent":     {testTraceparent},
	}
	// Another client might canonicalise names and use Content-Type.
	mixedHeaders := nats.Header{"Content-Type": {"application/json; charset=utf-8"}}
	for k, v := range sdkHeaders {
		if k == "ce-datacontenttype" {
			continue
		}
		mixedHeaders["Ce-"+strings.ToUpper(k[3:4])+k[4:]] = v
	}

	for name, h := range map[string]nats.Header{"sdk": sdkHeaders, "mixed case": mixedHeaders} {
		t.Run(name, func(t *testing.T) {
			e, err := Decode(h, []byte(data))
			if err != nil {
				t.Fatalf("Decode: %v", err)
			}
			if err := r.Validate(e); err != nil {
				t.Fatalf("Validate: %v", err)
			}
			check := func(attr, got, want string) {
				t.Helper()
				if got != want {
					t.Errorf("%s = %q, want %q", attr, got, want)
				}
			}
			check("id", e.ID(), "b7f1c9e2-0000-4000-8000-000000000001")
			check("source", e.Source(), "urn:refbus:agency:education")
			check("type", e.Type(), typeRequested)
			check("subject", e.Subject(), "referral/R-000456")
			check("dataschema", e.DataSchema(), schemaRequested)
			check("datacontenttype", e.DataMediaType(), "application/json")
			check("caseid", CaseID(e), "C-2025-0001")
			check("traceparent", e.Extensions()[ExtTraceparent].(string), testTraceparent)
			check("data", string(e.Data()), data)
			if !e.Time().Equal(when) {
				t.Errorf("time = %v, want %v", e.Time(), when)
			}
			if n, ok := Sequence(e); !ok || n != 12 {
				t.Errorf("Sequence = %d, %v; want 12, true", n, ok)
			}

			// A binary event is re-published in structured mode unchanged.
			msg, err := NewMsg("s", e)
			if err != nil {
				t.Fatalf("NewMsg: %v", err)
			}
			again, err := Decode(msg.Header, msg.Data)
			if err != nil {
				t.Fatalf("Decode re-encoded: %v", err)
			}
			assertSameEvent(t, again, e)
		})
	}
}

// sdkBinaryWriter writes headers the way the Go SDK's NATS JetStream binding
// does (protocol/nats_jetstream/v3 natsBinaryMessageWriter), so that the test
// follows the SDK's own formatting of each attribute type.
type sdkBinaryWriter struct {
	header nats.Header
	body   bytes.Buffer
}

func (w *sdkBinaryWriter) Start(context.Context) error { w.header = nats.Header{}; return nil }
func (w *sdkBinaryWriter) End(context.Context) error   { return nil }

func (w *sdkBinaryWriter) SetAttribute(attr spec.Attribute, value any) error {
	s := fmt.Sprint(value)
	if attr.Kind() == spec.Time {
		s = value.(time.Time).Format(time.RFC3339Nano)
	}
	w.header.Set("ce-"+attr.Name(), s)
	return nil
}

func (w *sdkBinaryWriter) SetExtension(name string, value any) error {
	w.header.Set("ce-"+name, fmt.Sprint(value))
	return nil
}

func (w *sdkBinaryWriter) SetData(r io.Reader) error {
	_, err := w.body.ReadFrom(r)
	return err
}

func TestDecodeBinaryFromSDKWriter(t *testing.T) {
	r := newRegistry(t)
	e := newEvent(t, r)
	w := &sdkBinaryWriter{}
	ctx := binding.WithForceBinary(context.Background())
	if _, err := binding.Write(ctx, binding.ToMessage(e), nil, w); err != nil {
		t.Fatalf("binding.Write: %v", err)
	}
	if w.header.Get("ce-specversion") != "1.0" {
		t.Fatalf("SDK writer did not use binary mode: %v", w.header)
	}
	got, err := Decode(w.header, w.body.Bytes())
	if err != nil {
		t.Fatalf("Decode: %v", err)
	}
	assertSameEvent(t, got, e)
	if err := r.Validate(got); err != nil {
		t.Fatalf("Validate: %v", err)
	}
}

func TestDecodeMalformed(t *testing.T) {
	binary := func(drop string, extra ...string) nats.Header {
		h := nats.Header{
			"ce-specversion": {"1.0"},
			"ce-id":          {"1"},
			"ce-source":      {testSource},
			"ce-type":        {typeRequested},
			"Content-Type":   {"application/json"},
		}
		delete(h, drop)
		for i := 0; i+1 < len(extra); i += 2 {
			h.Set(extra[i], extra[i+1])
		}
		return h
	}
	structured := nats.Header{"Content-Type": {ContentType}}
	tests := []struct {
		name   string
		header nats.Header
		body   string
		want   string
	}{
		{"not JSON", structured, `{"specversion": "1.0",`, "body is not JSON"},
		{"trailing garbage", nil, `{"specversion":"1.0","id":"1","source":"s","type":"t"} x`, "body is not JSON"},
		{"empty body", nil, ``, "body is empty"},
		{"array", structured, ` [1, 2]`, "body is not a JSON object"},
		{"not an event", structured, `{"specversion":"1.0","id":{}}`, "body is not a CloudEvent"},
		{"no specversion", structured, `{"id":"1","source":"s","type":"t"}`, "missing specversion attribute"},
		{"old specversion", structured, `{"specversion":"0.3","id":"1","source":"s","type":"t"}`, `unsupported specversion "0.3"`},
		{"missing id", structured, `{"specversion":"1.0","source":"s","type":"t"}`, "missing id attribute"},
		{"missing source", structured, `{"specversion":"1.0","id":"1","type":"t"}`, "missing source attribute"},
		{"missing type", structured, `{"specversion":"1.0","id":"1","source":"s"}`, "missing type attribute"},
		{"binary missing ce-id", binary("ce-id"), `{}`, "missing ce-id header"},
		{"binary empty ce-id", binary("", "ce-id", " "), `{}`, "missing ce-id header"},
		{"binary missing ce-type", binary("ce-type"), `{}`, "missing ce-type header"},
		{"binary bad specversion", binary("", "ce-specversion", "0.3"), `{}`, `unsupported ce-specversion "0.3"`},
		{"binary bad time", binary("", "ce-time", "yesterday"), `{}`, `ce-time "yesterday" is not an RFC 3339 timestamp`},
		{"binary bad source", binary("", "ce-source", "%zz"), `{}`, `invalid ce-source header: parse "%zz": invalid URL escape "%zz"`},
		{"binary bad extension", binary("", "ce-case_id", "x"), `{}`, `header "ce-case_id" is not a valid extension name`},
		{"binary body not JSON", binary(""), `not json`, "body is not JSON"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e, err := Decode(tt.header, []byte(tt.body))
			if !errors.Is(err, ErrMalformed) {
				t.Fatalf("Decode = %v, %v; want ErrMalformed", e, err)
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error %q does not contain %q", err, tt.want)
			}
		})
	}

	// An invalid header is reported once, not also as missing.
	_, err := Decode(binary("", "ce-source", "%zz"), []byte(`{}`))
	if err == nil || strings.Contains(err.Error(), "missing") {
		t.Errorf("Decode with a bad ce-source = %v, want only the parse error", err)
	}
}

func TestValidateSchemaViolation(t *testing.T) {
	r := newRegistry(t)
	bad := map[string]any{
		"referral_id": "R-1",
		"from_agency": "health",
		"to_agency":   "mars",
		"urgency":     2.5,
	}
	_, err := r.New(testSource, typeRequested, "", bad)
	if !errors.Is(err, ErrInvalid) {
		t.Fatalf("New = %v, want ErrInvalid", err)
	}
	msg := err.Error()
	for _, want := range []string{
		"data does not match schema " + schemaRequested,
		"at /to_agency: value must be one of 'health', 'education'",
		"at /note: missing property",
		"at /referral_id: 'R-1' does not match pattern",
		"at /urgency:",
	} {
		if !strings.Contains(msg, want) {
			t.Errorf("error %q does not contain %q", msg, want)
		}
	}
	if strings.Contains(msg, "\n") {
		t.Errorf("error %q spans lines", msg)
	}

	// The same rejection on the consuming side.
	e := newEvent(t, r)
	e.DataEncoded = []byte(`{"referral_id":"R-000001","from_agency":"health","to_agency":"health","note":"x","extra":true}`)
	err = r.Validate(e)
	if !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), "at /extra: property not allowed") {
		t.Errorf("Validate = %v, want ErrInvalid naming /extra", err)
	}

	e.DataEncoded = []byte(`{"referral_id":`)
	if err := r.Validate(e); !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), "data is not JSON") {
		t.Errorf("Validate truncated data = %v, want ErrInvalid: data is not JSON", err)
	}
	e.DataEncoded = nil
	if err := r.Validate(e); !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), "data is missing") {
		t.Errorf("Validate without data = %v, want ErrInvalid: data is missing", err)
	}
}

func TestValidateTruncatesLongMessages(t *testing.T) {
	r := newRegistry(t)
	data := map[string]any{}
	for i := range 25 {
		data[fmt.Sprintf("unexpected%02d", i)] = i
	}
	_, err := r.New(testSource, typeRequested, "", data)
	if !errors.Is(err, ErrInvalid) {
		t.Fatalf("New = %v, want ErrInvalid", err)
	}
	// 4 missing properties + 25 unexpected ones, only 10 of them shown.
	if got := strings.Count(err.Error(), "; at "); got != maxIssues-1 {
		t.Errorf("error has %d parts after the first, want %d: %v", got, maxIssues-1, err)
	}
	if !strings.HasSuffix(err.Error(), "; and 19 more") {
		t.Errorf("error %q does not end with the count of hidden parts", err)
	}
}

func TestUnknownType(t *testing.T) {
	r := newRegistry(t)
	_, err := r.New(testSource, "org.refbus.referral.teleported.v1", "", validReferral)
	if !errors.Is(err, ErrUnknownType) || !strings.Contains(err.Error(), "org.refbus.referral.teleported.v1") {
		t.Errorf("New = %v, want ErrUnknownType naming the type", err)
	}

	e := newEvent(t, r)
	e.SetType("org.refbus.referral.teleported.v1")
	err = r.Validate(e)
	if !errors.Is(err, ErrUnknownType) {
		t.Errorf("Validate = %v, want ErrUnknownType", err)
	}
	// Consumers may skip unknown types, so they are not invalid events.
	if errors.Is(err, ErrInvalid) {
		t.Errorf("Validate = %v, unknown type must not be ErrInvalid", err)
	}
}

func TestValidateEnvelope(t *testing.T) {
	r := newRegistry(t)
	tests := []struct {
		name   string
		modify func(e *ce.Event)
		want   string
	}{
		{"wrong dataschema", func(e *ce.Event) {
			e.SetDataSchema("https://schemas.refbus.org/referral.requested.v2.json")
		}, `dataschema "https://schemas.refbus.org/referral.requested.v2.json" does not match ` + schemaRequested},
		{"text data", func(e *ce.Event) { e.SetDataContentType("text/plain") }, `datacontenttype "text/plain" is not supported`},
		{"short sequence", func(e *ce.Event) { e.SetExtension(ExtSequence, "12") }, `sequence "12" is not 10 digits`},
		{"zero sequence", func(e *ce.Event) { SetSequence(e, 0) }, `sequence "0000000000" is not 10 digits from 0000000001`},
		{"negative sequence", func(e *ce.Event) { SetSequence(e, -1) }, `sequence "-1"`},
		{"numeric sequence", func(e *ce.Event) { e.SetExtension(ExtSequence, 12) }, `sequence 12 is not 10 digits`},
		{"numeric caseid", func(e *ce.Event) { e.SetExtension(ExtCaseID, 12) }, `caseid 12 is not a non-empty string`},
		{"missing id and source", func(e *ce.Event) {
			e.Context.(*ce.EventContextV1).ID = ""
			e.Context.(*ce.EventContextV1).Source = ce.New().Context.(*ce.EventContextV1).Source
		}, "missing id; missing source"},
		{"unparsable source", func(e *ce.Event) { e.SetSource("%zz") }, `source: parse "%zz": invalid URL escape`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEvent(t, r)
			tt.modify(e)
			err := r.Validate(e)
			if !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("Validate = %v, want ErrInvalid containing %q", err, tt.want)
			}
		})
	}

	// Optional attributes may be left out.
	e := newEvent(t, r)
	e.SetDataSchema("")
	e.SetDataContentType("")
	e.SetExtension(ExtSequence, nil)
	if err := r.Validate(e); err != nil {
		t.Errorf("Validate without dataschema, datacontenttype or sequence: %v", err)
	}
}

func TestSequence(t *testing.T) {
	e := ce.New()
	if _, ok := Sequence(&e); ok {
		t.Error("Sequence of a new event is set")
	}
	for _, n := range []int64{1, 42, 9999999999} {
		SetSequence(&e, n)
		if got := e.Extensions()[ExtSequence]; got != fmt.Sprintf("%010d", n) {
			t.Errorf("SetSequence(%d) wrote %v", n, got)
		}
		if got, ok := Sequence(&e); !ok || got != n {
			t.Errorf("Sequence after SetSequence(%d) = %d, %v", n, got, ok)
		}
	}
	e.SetExtension(ExtSequence, "00000000x1")
	if _, ok := Sequence(&e); ok {
		t.Error("Sequence accepted a non-digit")
	}
}

func TestEncodeAndDataErrors(t *testing.T) {
	if _, err := Encode(&ce.Event{}); err == nil {
		t.Error("Encode of an event without context succeeded")
	}
	if _, err := NewMsg("s", nil); err == nil {
		t.Error("NewMsg of nil succeeded")
	}
	e := ce.New()
	var v map[string]any
	if err := Data(&e, &v); err == nil || !strings.HasPrefix(err.Error(), "decode event data: ") {
		t.Errorf("Data of an event without data = %v", err)
	}
}

func FuzzDecode(f *testing.F) {
	r := newRegistry(f)
	e := newEvent(f, r)
	body, err := Encode(e)
	if err != nil {
		f.Fatal(err)
	}
	f.Add(body, "", "", "")
	f.Add(body, ContentType, "", "")
	f.Add(body, "", "1.0", "x")
	f.Add([]byte(`{"referral_id":"R-000001"}`), "application/json", "1.0", "1")
	f.Add([]byte(`{"specversion":"1.0","id":"1","source":"s","type":"t","data_base64":"e30="}`), "", "", "")
	f.Add([]byte(`{"specversion":"1.0","id":"1","source":"s","type":"t","datacontenttype":"text/plain","data":"hi"}`), "", "", "")
	f.Add([]byte(`{"specversion":"0.3","id":"1","source":"s","type":"t","datacontentencoding":"base64","data":"e30="}`), "", "", "")
	f.Add([]byte(`null`), "", "", "")
	f.Fuzz(func(t *testing.T, body []byte, contentType, specversion, id string) {
		h := nats.Header{}
		if contentType != "" {
			h.Set("Content-Type", contentType)
		}
		if specversion != "" {
			h.Set("ce-specversion", specversion)
			h.Set("ce-id", id)
			h.Set("ce-source", testSource)
			h.Set("ce-type", typeRequested)
			h.Set("ce-"+id, specversion)
		}
		e, err := Decode(h, body)
		if err != nil {
			if !errors.Is(err, ErrMalformed) {
				t.Fatalf("Decode error %v does not wrap ErrMalformed", err)
			}
			return
		}
		_ = r.Validate(e)
		// Whatever is accepted must survive a structured round trip.
		msg, err := NewMsg("s", e)
		if err != nil {
			t.Fatalf("NewMsg of a decoded event: %v", err)
		}
		if _, err := Decode(msg.Header, msg.Data); err != nil {
			t.Fatalf("Decode of a re-encoded event: %v\nbody: %s", err, msg.Data)
		}
	})
}

func BenchmarkEncodeDecodeValidate(b *testing.B) {
	r := newRegistry(b)
	e := newEvent(b, r)
	b.ReportAllocs()
	for b.Loop() {
		msg, err := NewMsg("refbus.referral.housing", e)
		if err != nil {
			b.Fatal(err)
		}
		got, err := Decode(msg.Header, msg.Data)
		if err != nil {
			b.Fatal(err)
		}
		if err := r.Validate(got); err != nil {
			b.Fatal(err)
		}
	}
}

// Consumers validate from many goroutines with one shared registry.
func TestValidateConcurrent(t *testing.T) {
	r := newRegistry(t)
	msg, err := NewMsg("s", newEvent(t, r))
	if err != nil {
		t.Fatal(err)
	}
	bad := newEvent(t, r)
	bad.DataEncoded = []byte(`{"to_agency":"mars"}`)
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			for range 50 {
				e, err := Decode(msg.Header, msg.Data)
				if err != nil {
					t.Error(err)
					return
				}
				if err := r.Validate(e); err != nil {
					t.Error(err)
				}
				if err := r.Validate(bad); !errors.Is(err, ErrInvalid) {
					t.Errorf("Validate bad = %v", err)
				}
			}
		})
	}
	wg.Wait()
}

// A batch message carries its events whole, in order, and splits back into
// the bytes of each; a body that is not an array of events is malformed.
func TestBatchRoundTrip(t *testing.T) {
	reg := newRegistry(t)
	var evs []*ce.Event
	for range 3 {
		evs = append(evs, newEvent(t, reg))
	}
	m, err := NewBatchMsg("refbus.health.ngo.x", evs)
	if err != nil {
		t.Fatal(err)
	}
	if !IsBatch(m.Header) {
		t.Fatalf("batch message has Content-Type %q", m.Header.Get("Content-Type"))
	}
	if id := m.Header.Get(nats.MsgIdHdr); id != MsgID(evs[0])+"+3" {
		t.Fatalf("Nats-Msg-Id %q", id)
	}
	parts, err := SplitBatch(m.Data)
	if err != nil || len(parts) != 3 {
		t.Fatalf("split: %d parts, %v", len(parts), err)
	}
	for i, p := range parts {
		got, err := Decode(nil, p)
		if err != nil {
			t.Fatal(err)
		}
		if got.ID() != evs[i].ID() || got.Subject() != evs[i].Subject() || string(got.Data()) != string(evs[i].Data()) {
			t.Fatalf("event %d came back as %s/%s %s", i, got.ID(), got.Subject(), got.Data())
		}
	}
	for _, bad := range []string{``, `{}`, `[]`, `[{"a":1}`, `[1] x`, `[{"a":1},]`, `[{"a":1} {"b":2}]`, `[{"a":1}]]`, `[,{"a":1}]`, `[{"a":}]`, ` [{"a":1}] ,`} {
		if _, err := SplitBatch([]byte(bad)); !errors.Is(err, ErrMalformed) {
			t.Errorf("SplitBatch(%q) = %v, want ErrMalformed", bad, err)
		}
	}
	// Framing only: an element that is no event is Decode's to refuse.
	if parts, err := SplitBatch([]byte(" [{\"a\":[1,\"]\"]}, 42]\n")); err != nil || len(parts) != 2 || string(parts[0]) != `{"a":[1,"]"]}` || string(parts[1]) != "42" {
		t.Errorf("SplitBatch of two elements = %q, %v", parts, err)
	}
}

// FuzzSplitBatch holds SplitBatch to encoding/json's reading of a batch:
// every batch it accepts splits into the same events, and a batch it
// refuses is refused too, unless one of the parts is no JSON, which Decode
// then refuses on its own.
func FuzzSplitBatch(f *testing.F) {
	for _, s := range []string{`[{"a":1}]`, `[{"a":1},{"b":[2,"]"]}]`, ` [ {} , 42 ] `, `[{"a":1},]`, `[{"a":"\u0001"}]`, "[{\"a\":\"\x01\"}]", `[{"a":1}] x`, `[]`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		var want []json.RawMessage
		stdErr := json.Unmarshal(body, &want)
		got, err := SplitBatch(body)
		switch {
		case stdErr == nil && len(want) > 0:
			if err != nil || len(got) != len(want) {
				t.Fatalf("SplitBatch(%q) = %d parts, %v; encoding/json reads %d", body, len(got), err, len(want))
			}
			for i := range want {
				if !bytes.Equal(got[i], want[i]) {
					t.Fatalf("part %d of %q is %q, encoding/json reads %q", i, body, got[i], want[i])
				}
			}
		case err == nil && !slices.ContainsFunc(got, func(p []byte) bool { return !json.Valid(p) }):
			t.Fatalf("SplitBatch(%q) accepts %q, which encoding/json refuses: %v", body, got, stdErr)
		}
	})
}
