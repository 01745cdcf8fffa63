package schemas_test

import (
	"encoding/json"
	"fmt"
	"io/fs"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/refbus/refbus/pkg/receipt"
	"github.com/refbus/refbus/pkg/referral"
	"github.com/refbus/refbus/schemas"
)

// docs are the schema files by file name, from both schema sets.
func docs(t *testing.T) map[string]map[string]any {
	t.Helper()
	out := map[string]map[string]any{}
	for _, fsys := range []fs.FS{schemas.FS, receipt.Schema} {
		names, err := fs.Glob(fsys, "*.json")
		if err != nil {
			t.Fatal(err)
		}
		for _, n := range names {
			b, err := fs.ReadFile(fsys, n)
			if err != nil {
				t.Fatal(err)
			}
			var d map[string]any
			if err := json.Unmarshal(b, &d); err != nil {
				t.Fatalf("%s: %v", n, err)
			}
			out[n] = d
		}
	}
	return out
}

// checker compares Go types with JSON Schemas, resolving $refs among the
// files of docs.
type checker struct {
	docs map[string]map[string]any
	errs []string
}

func (c *checker) fail(at, format string, args ...any) {
	c.errs = append(c.errs, at+": "+fmt.Sprintf(format, args...))
}

// resolve follows $ref (a file, a local fragment, or both) until a schema
// without one, returning it and the file it is in.
func (c *checker) resolve(file string, s map[string]any) (string, map[string]any) {
	for {
		ref, ok := s["$ref"].(string)
		if !ok {
			return file, s
		}
		target, frag, _ := strings.Cut(ref, "#")
		if target != "" {
			file = target
		}
		next := c.docs[file]
		for _, part := range strings.Split(strings.Trim(frag, "/"), "/") {
			if part == "" {
				continue
			}
			next, _ = next[part].(map[string]any)
		}
		if next == nil {
			return file, map[string]any{}
		}
		s = next
	}
}

var (
	timeType = reflect.TypeFor[time.Time]()
	uuidType = reflect.TypeFor[uuid.UUID]()
)

// compare holds Go type t against schema s.
func (c *checker) compare(at string, t reflect.Type, file string, s map[string]any) {
	file, s = c.resolve(file, s)
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	typ, _ := s["type"].(string)
	switch {
	case t == timeType:
		if typ != "string" || s["format"] != "date-time" {
			c.fail(at, "Go time.Time, schema %v (want a date-time string)", s)
		}
	case t == uuidType:
		if typ != "string" || !strings.Contains(fmt.Sprint(s["pattern"]), "[0-9a-f]{8}") {
			c.fail(at, "Go uuid.UUID, schema %v (want the uuid string)", s)
		}
	case t.Kind() == reflect.String:
		if typ != "string" && !allStrings(s["enum"]) {
			c.fail(at, "Go string, schema type %q", typ)
		}
	case t.Kind() == reflect.Bool:
		if typ != "boolean" {
			c.fail(at, "Go bool, schema type %q", typ)
		}
	case t.Kind() >= reflect.Int && t.Kind() <= reflect.Uint64:
		if typ != "integer" {
			c.fail(at, "Go %s, schema type %q", t.Kind(), typ)
		}
	case t.Kind() == reflect.Slice:
		if typ != "array" {
			c.fail(at, "Go slice, schema type %q", typ)
			return
		}
		items, _ := s["items"].(map[string]any)
		c.compare(at+"[]", t.Elem(), file, items)
	case t.Kind() == reflect.Struct:
		c.object(at, t, file, s)
	default:
		c.fail(at, "Go %s has no schema counterpart", t)
	}
}

func allStrings(v any) bool {
	vs, ok := v.([]any)
	if !ok || len(vs) == 0 {
		return false
	}
	for _, x := range vs {
		if _, ok := x.(string); !ok {
			return false
		}
	}
	return true
}

// object holds struct t against an object schema: the same properties, a
// property required exactly when its field is not omitempty, the same
// enums, and no other properties allowed.
func (c *checker) object(at string, t reflect.Type, file string, s map[string]any) {
	if s["type"] != "object" || s["additionalProperties"] != false {
		c.fail(at, "Go struct %s, schema is not a closed object (type object, additionalProperties false)", t)
	}
	props, _ := s["properties"].(map[string]any)
	var required []string
	if rs, ok := s["required"].([]any); ok {
		for _, r := range rs {
			required = append(required, r.(string))
		}
	}
	seen := map[string]bool{}
	for i := range t.NumField() {
		f := t.Field(i)
		name, opts, _ := strings.Cut(f.Tag.Get("json"), ",")
		if name == "-" || f.Tag.Get("local") == "true" {
			continue // not on the wire
		}
		seen[name] = true
		p, ok := props[name].(map[string]any)
		if !ok {
			c.fail(at+"."+name, "Go field %s.%s has no schema property", t.Name(), f.Name)
			continue
		}
		omit := strings.Contains(opts, "omitempty")
		if req := slices.Contains(required, name); req == omit {
			c.fail(at+"."+name, "schema required=%v but Go omitempty=%v", req, omit)
		}
		if enum := f.Tag.Get("enum"); enum != "" {
			_, ps := c.resolve(file, p)
			if got := fmt.Sprint(ps["enum"]); got != fmt.Sprint(strings.Split(enum, ",")) {
				c.fail(at+"."+name, "Go enum %s, schema enum %s", enum, got)
			}
		}
		c.compare(at+"."+name, f.Type, file, p)
	}
	for name := range props {
		if !seen[name] {
			c.fail(at+"."+name, "schema property has no Go field in %s", t)
		}
	}
}

// The Go data type of every event type and its schema cannot drift: same
// properties, types, required fields and enums, all the way down.
func TestGoTypesMatchSchemas(t *testing.T) {
	c := &checker{docs: docs(t)}
	byType := map[string]string{}
	for name, d := range c.docs {
		if typ, ok := d["x-cloudevents-type"].(string); ok {
			byType[typ] = name
		}
	}
	for typ, v := range schemas.Types {
		file, ok := byType[typ]
		if !ok {
			t.Errorf("%s has a Go type but no schema", typ)
			continue
		}
		c.object(typ, reflect.TypeOf(v), file, c.docs[file])
	}
	for typ := range byType {
		if _, ok := schemas.Types[typ]; !ok {
			t.Errorf("%s has a schema but no Go type in schemas.Types", typ)
		}
	}
	for _, e := range c.errs {
		t.Error(e)
	}
}

// The checker is not blind: a Go type that differs from its schema fails.
func TestDriftIsCaught(t *testing.T) {
	c := &checker{docs: docs(t)}
	type wrong struct {
		ToAgency string `json:"to_agency"`
		Service  int    `json:"service"`
		Note     string `json:"note,omitempty"`
		Extra    string `json:"extra"`
	}
	c.object("requested", reflect.TypeFor[wrong](), "referral.requested.v1.json", c.docs["referral.requested.v1.json"])
	want := []string{"requested.service: Go int", "requested.note: schema required=true but Go omitempty=true", "requested.extra: Go field", "requested.work: schema property has no Go field"}
	for _, w := range want {
		if !slices.ContainsFunc(c.errs, func(e string) bool { return strings.HasPrefix(e, w) }) {
			t.Errorf("no problem %q among %q", w, c.errs)
		}
	}
}

// The categories a consent may cover are the schema's, in its order.
func TestCategoriesMatchSchema(t *testing.T) {
	d := docs(t)["common.json"]
	enum := d["$defs"].(map[string]any)["category"].(map[string]any)["enum"].([]any)
	var want []string
	for _, e := range enum {
		want = append(want, e.(string))
	}
	if got := schemas.Categories(); !slices.Equal(got, want) {
		t.Fatalf("schemas.Categories() = %v, common.json's category enum = %v", got, want)
	}
}

// Every move but receive has an event type, and the two maps agree.
func TestMoveTypes(t *testing.T) {
	for _, mv := range referral.Moves() {
		typ := schemas.MoveType(mv)
		if mv == referral.Receive {
			if typ != "" {
				t.Errorf("receive has event type %q", typ)
			}
			continue
		}
		if back, ok := schemas.MoveOf(typ); !ok || back != mv {
			t.Errorf("MoveType(%s) = %q, MoveOf gives %q", mv, typ, back)
		}
		if _, ok := schemas.Types[typ]; !ok {
			t.Errorf("move %s: type %q has no data type", mv, typ)
		}
		d, err := schemas.MoveData(mv, schemas.MoveFields{NewReferralID: &uuid.Nil})
		if err != nil {
			t.Fatal(err)
		}
		if reflect.TypeOf(d) != reflect.TypeOf(schemas.Types[typ]) {
			t.Errorf("MoveData(%s) is a %T, the type's data is a %T", mv, d, schemas.Types[typ])
		}
	}
}

// MoveFields can read every move's data: it has each move type's fields,
// with the same JSON names and Go types.
func TestMoveFieldsCoverEveryMove(t *testing.T) {
	fields := map[string]reflect.Type{}
	mf := reflect.TypeFor[schemas.MoveFields]()
	for i := range mf.NumField() {
		name, _, _ := strings.Cut(mf.Field(i).Tag.Get("json"), ",")
		fields[name] = mf.Field(i).Type
	}
	for _, mv := range referral.Moves() {
		typ := schemas.MoveType(mv)
		if typ == "" {
			continue
		}
		dt := reflect.TypeOf(schemas.Types[typ])
		for i := range dt.NumField() {
			f := dt.Field(i)
			name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
			ft := f.Type
			if ft.Kind() != reflect.Pointer && fields[name] != nil && fields[name].Kind() == reflect.Pointer {
				ft = reflect.PointerTo(ft)
			}
			if fields[name] != ft {
				t.Errorf("%s.%s (%s): MoveFields has %v", typ, name, f.Type, fields[name])
			}
		}
	}
}
