package event

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"net/url"
	"path"
	"slices"
	"sort"
	"strings"
	"time"
	"unicode/utf8"

	ce "github.com/cloudevents/sdk-go/v2/event"
	"github.com/google/uuid"
	jsoniter "github.com/json-iterator/go"
	"github.com/santhosh-tekuri/jsonschema/v6"
	"github.com/santhosh-tekuri/jsonschema/v6/kind"
)

// typeKeyword is the schema keyword naming the event type a schema describes.
const typeKeyword = "x-cloudevents-type"

// Limits on the size of a schema rejection message: it is shown to an
// operator and stored with the rejected event, so it must stay readable.
const (
	maxIssues   = 10
	maxIssueLen = 300
)

// Registry holds the compiled JSON Schemas of event data, one per event type.
// It is immutable once built and safe for concurrent use.
type Registry struct {
	schemas map[string]*typeSchema
	types   []string
}

type typeSchema struct {
	id     string
	schema *jsonschema.Schema
	// sealed is the schema of the sealed form (seal.go), nil for a type
	// that seals nothing; sealedFields are the properties it seals.
	sealed       *jsonschema.Schema
	sealedID     string
	sealedFields []string
}

type schemaFile struct {
	path         string
	id           string
	eventType    string
	sealedFields []string
}

// NewRegistry compiles every *.json file in each of fsyss, walked
// recursively: the application's schemas and the bus's own (the receipt's,
// in package receipt). Each file must have an absolute "$id". A file with a top-level
// "x-cloudevents-type" string describes the data of that event type; files
// without it (shared $defs, say) are still added so that $ref between
// schemas resolves. References are resolved only among these files: nothing
// is fetched from the network or the local disk.
func NewRegistry(fsyss ...fs.FS) (*Registry, error) {
	c := jsonschema.NewCompiler()
	c.DefaultDraft(jsonschema.Draft2020)
	// An empty loader makes an unresolvable $ref a compile error instead of
	// a file or network read at startup.
	c.UseLoader(jsonschema.SchemeURLLoader{})

	var files []schemaFile
	for _, fsys := range fsyss {
		err := fs.WalkDir(fsys, ".", func(p string, d fs.DirEntry, err error) error {
			if err != nil {
				return err
			}
			if d.IsDir() || path.Ext(p) != ".json" {
				return nil
			}
			f, err := addSchemaResource(c, fsys, p)
			if err != nil {
				return fmt.Errorf("schema %s: %w", p, err)
			}
			files = append(files, f)
			return nil
		})
		if err != nil {
			return nil, fmt.Errorf("load schemas: %w", err)
		}
	}

	r := &Registry{schemas: make(map[string]*typeSchema)}
	byType := make(map[string]string)
	for _, f := range files {
		if f.eventType == "" {
			continue
		}
		if prev, dup := byType[f.eventType]; dup {
			return nil, fmt.Errorf("load schemas: event type %q is described by both %s and %s", f.eventType, prev, f.path)
		}
		byType[f.eventType] = f.path
		sch, err := c.Compile(f.id)
		if err != nil {
			return nil, fmt.Errorf("compile schema %s: %w", f.path, err)
		}
		ts := &typeSchema{id: f.id, schema: sch, sealedFields: f.sealedFields}
		if len(f.sealedFields) > 0 {
			ts.sealedID = f.id + SealedForm
			if ts.sealed, err = c.Compile(ts.sealedID); err != nil {
				return nil, fmt.Errorf("compile the sealed form of schema %s: %w", f.path, err)
			}
		}
		r.schemas[f.eventType] = ts
		r.types = append(r.types, f.eventType)
	}
	sort.Strings(r.types)
	return r, nil
}

func addSchemaResource(c *jsonschema.Compiler, fsys fs.FS, p string) (schemaFile, error) {
	f := schemaFile{path: p}
	b, err := fs.ReadFile(fsys, p)
	if err != nil {
		return f, err
	}
	doc, err := jsonschema.UnmarshalJSON(bytes.NewReader(b))
	if err != nil {
		return f, fmt.Errorf("parse: %w", err)
	}
	obj, ok := doc.(map[string]any)
	if !ok {
		return f, errors.New("not a JSON object")
	}
	id, _ := obj["$id"].(string)
	u, err := url.Parse(id)
	if id == "" || err != nil || !u.IsAbs() {
		return f, errors.New(`"$id" must be an absolute URI`)
	}
	// A trailing empty fragment is allowed by the spec but would make the
	// dataschema comparison fail for an otherwise identical URI.
	f.id = strings.TrimSuffix(id, "#")
	if v, ok := obj[typeKeyword]; ok {
		t, ok := v.(string)
		if !ok || strings.TrimSpace(t) == "" {
			return f, fmt.Errorf("%q must be a non-empty string", typeKeyword)
		}
		f.eventType = t
		var sealed map[string]any
		if sealed, f.sealedFields = sealedFormSchema(obj, f.id); sealed != nil {
			if err := c.AddResource(f.id+SealedForm, sealed); err != nil {
				return f, err
			}
		}
	}
	if err := c.AddResource(f.id, doc); err != nil {
		return f, err
	}
	return f, nil
}

// Types returns the event types known to the registry, sorted.
func (r *Registry) Types() []string {
	return slices.Clone(r.types)
}

// SchemaID returns the $id of the schema for eventType.
func (r *Registry) SchemaID(eventType string) (string, bool) {
	s, ok := r.schemas[eventType]
	if !ok {
		return "", false
	}
	return s.id, true
}

// New builds an event of eventType from source with a UUIDv7 id (time
// ordered, so ids sort by creation in logs and stores), the current UTC time,
// data encoded as JSON and dataschema set to the type's $id. The event is
// validated before it is returned; errors wrap ErrUnknownType or ErrInvalid.
// Extensions such as caseid and sequence are set by the caller afterwards.
func (r *Registry) New(source, eventType, subject string, data any) (*ce.Event, error) {
	e, err := r.Build(source, eventType, subject, data)
	if err != nil {
		return nil, err
	}
	if err := r.Validate(e); err != nil {
		return nil, err
	}
	return e, nil
}

// Build is New without validating the event, for an event that is
// validated anyway before it leaves, as outbox.Enqueue does, so that it is
// not validated twice.
func (r *Registry) Build(source, eventType, subject string, data any) (*ce.Event, error) {
	s, ok := r.schemas[eventType]
	if !ok {
		return nil, fmt.Errorf("%w: %q", ErrUnknownType, eventType)
	}
	id, err := uuid.NewV7()
	if err != nil {
		return nil, fmt.Errorf("new event id: %w", err)
	}
	b, err := jsoniter.ConfigCompatibleWithStandardLibrary.Marshal(data)
	if err != nil {
		return nil, fmt.Errorf("%w: encode data: %w", ErrInvalid, err)
	}

	e := ce.New()
	e.SetID(id.String())
	e.SetSource(source)
	e.SetType(eventType)
	e.SetSubject(subject)
	e.SetTime(time.Now().UTC())
	e.SetDataContentType(ce.ApplicationJSON)
	e.SetDataSchema(s.id)
	e.DataEncoded = b
	return &e, nil
}

// Validate checks the envelope and the data of e. The envelope must pass the
// CloudEvents SDK validation, be spec version 1.0, have id, source and type,
// a datacontenttype of application/json (or none), a dataschema (if any)
// equal to the registry's $id for the type (or that of its sealed form),
// and a sequence (if any) of 10 digits. The data must match the type's
// schema; a sealed event's readable part, that of its sealed form.
//
// Errors wrap ErrInvalid, or ErrUnknownType when the type has no schema.
// Their message is meant for a person: it is the rejection reason an
// operator sees.
func (r *Registry) Validate(e *ce.Event) error {
	if e == nil || e.Context == nil {
		return fmt.Errorf("%w: event has no context", ErrInvalid)
	}
	if issues := envelopeIssues(e); len(issues) > 0 {
		return fmt.Errorf("%w: %s", ErrInvalid, strings.Join(issues, "; "))
	}
	s, ok := r.schemas[e.Type()]
	if !ok {
		return fmt.Errorf("%w: %q", ErrUnknownType, e.Type())
	}
	switch ds := e.DataSchema(); {
	case ds == "" || ds == s.id:
		return s.validate(s.schema, s.id, e.Data())
	case s.sealed != nil && ds == s.sealedID:
		return s.validate(s.sealed, ds, e.Data())
	default:
		return fmt.Errorf("%w: dataschema %q does not match %s, the schema of %s", ErrInvalid, ds, s.id, e.Type())
	}
}

// envelopeIssues lists what is wrong with the attributes of e, all at once
// so that a sender can fix everything in one go.
func envelopeIssues(e *ce.Event) []string {
	var issues []string
	if e.SpecVersion() != ce.CloudEventsVersionV1 {
		issues = append(issues, fmt.Sprintf("specversion %q is not supported, want %s", e.SpecVersion(), ce.CloudEventsVersionV1))
	}
	// The SDK words a missing attribute as "id: MUST be a non-empty
	// string"; "missing id" reads better, so those entries are replaced.
	missing := map[string]bool{
		"id":     strings.TrimSpace(e.ID()) == "",
		"source": strings.TrimSpace(e.Source()) == "",
		"type":   strings.TrimSpace(e.Type()) == "",
	}
	if err := e.Validate(); err != nil {
		var fields ce.ValidationError
		if errors.As(err, &fields) {
			for _, name := range slices.Sorted(maps.Keys(fields)) {
				// A setter error (an unparsable source, say) says more
				// than "missing", so it is kept.
				if missing[name] && e.FieldErrors[name] == nil {
					continue
				}
				missing[name] = false
				issues = append(issues, name+": "+fields[name].Error())
			}
		} else {
			issues = append(issues, err.Error())
		}
	}
	for _, name := range []string{"id", "source", "type"} {
		if missing[name] {
			issues = append(issues, "missing "+name)
		}
	}
	if ct := e.DataContentType(); ct != "" && e.DataMediaType() != ce.ApplicationJSON {
		issues = append(issues, fmt.Sprintf("datacontenttype %q is not supported, want %s", ct, ce.ApplicationJSON))
	}
	if v, ok := extension(e, ExtSequence); ok {
		if s, _ := v.(string); !validSequence(s) {
			issues = append(issues, fmt.Sprintf("sequence %v is not 10 digits from 0000000001", quoteValue(v)))
		}
	}
	for _, name := range []string{ExtCaseID, ExtTraceparent} {
		if v, ok := extension(e, name); ok {
			if s, _ := v.(string); s == "" {
				issues = append(issues, fmt.Sprintf("%s %v is not a non-empty string", name, quoteValue(v)))
			}
		}
	}
	return issues
}

// dataJSON decodes event data for validation.
var dataJSON = jsoniter.Config{UseNumber: true}.Froze()

func (s *typeSchema) validate(schema *jsonschema.Schema, id string, data []byte) error {
	var doc any
	if len(data) > 0 {
		// Numbers stay json.Number, so integer and multipleOf checks are
		// exact, as with jsonschema.UnmarshalJSON, which takes twice as long.
		if err := dataJSON.Unmarshal(data, &doc); err != nil {
			return fmt.Errorf("%w: data is not JSON: %v", ErrInvalid, err)
		}
	}
	err := schema.Validate(doc)
	if err == nil {
		return nil
	}
	if len(data) == 0 {
		return fmt.Errorf("%w: data is missing, schema %s requires it", ErrInvalid, id)
	}
	var verr *jsonschema.ValidationError
	if !errors.As(err, &verr) {
		return fmt.Errorf("%w: data does not match schema %s: %w", ErrInvalid, id, err)
	}
	summary, places := summarize(verr)
	return &DataError{Schema: id, Places: places, msg: fmt.Sprintf("%v: data does not match schema %s: %s", ErrInvalid, id, summary)}
}

// DataError is data that does not match its type's schema. Its message
// names the places and what is wrong there, which may quote the data;
// Places names the places only (JSON pointers), for a reason that must
// not repeat what the data says. It unwraps to ErrInvalid.
type DataError struct {
	Schema string
	Places []string
	msg    string
}

func (e *DataError) Error() string { return e.msg }

// Unwrap returns ErrInvalid.
func (e *DataError) Unwrap() error { return ErrInvalid }

// summarize flattens a schema validation error into "at <location>:
// <message>" parts, and the locations. Only leaves are kept: the
// intermediate nodes ($ref, allOf, ...) just say "validation failed" and
// would drown the useful parts.
func summarize(verr *jsonschema.ValidationError) (string, []string) {
	var parts, places []string
	total := 0
	add := func(loc []string, msg string) {
		total++
		if p := pointer(loc); !slices.Contains(places, p) {
			places = append(places, p)
		}
		if len(parts) < maxIssues {
			parts = append(parts, Truncate("at "+pointer(loc)+": "+msg, maxIssueLen))
		}
	}
	var walk func(*jsonschema.ValidationError)
	walk = func(v *jsonschema.ValidationError) {
		if len(v.Causes) > 0 {
			for _, c := range v.Causes {
				walk(c)
			}
			return
		}
		// Point at the offending property itself: "at /note: missing
		// property" names the field where "at (root): missing property
		// 'note'" makes the reader look for it.
		switch k := v.ErrorKind.(type) {
		case *kind.Required:
			for _, p := range k.Missing {
				add(append(slices.Clip(v.InstanceLocation), p), "missing property")
			}
			return
		case *kind.AdditionalProperties:
			for _, p := range k.Properties {
				add(append(slices.Clip(v.InstanceLocation), p), "property not allowed")
			}
			return
		}
		add(v.InstanceLocation, kindMessage(v.ErrorKind))
	}
	walk(verr)
	if total > len(parts) {
		parts = append(parts, fmt.Sprintf("and %d more", total-len(parts)))
	}
	return strings.Join(parts, "; "), places
}

// kindMessage renders one error kind in English. The library only renders
// kinds through a golang.org/x/text printer, which is not a dependency of
// this module, so a cause-free error is rendered and its location prefix,
// which is fixed for an empty location, is cut off.
func kindMessage(k jsonschema.ErrorKind) string {
	msg := (&jsonschema.ValidationError{ErrorKind: k}).Error()
	return strings.TrimPrefix(msg, "at '': ")
}

// pointer renders an instance location as a JSON Pointer (RFC 6901).
func pointer(loc []string) string {
	if len(loc) == 0 {
		return "(root)"
	}
	var sb strings.Builder
	for _, tok := range loc {
		sb.WriteByte('/')
		tok = strings.ReplaceAll(tok, "~", "~0")
		sb.WriteString(strings.ReplaceAll(tok, "/", "~1"))
	}
	return sb.String()
}

// Truncate cuts a reason to at most n bytes and marks the cut, backing up
// to a character's start so that it stays valid UTF-8: a reason is shown
// to people and stored with what it refuses.
func Truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n] + "…"
}

func quoteValue(v any) string {
	if s, ok := v.(string); ok {
		return fmt.Sprintf("%q", s)
	}
	return fmt.Sprint(v)
}
