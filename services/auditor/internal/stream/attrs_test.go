package stream

import (
	"encoding/json"
	"testing"

	"github.com/nats-io/nats.go"

	"github.com/refbus/refbus/schemas"
)

func TestScanStructured(t *testing.T) {
	body := []byte(` { "specversion":"1.0", "id" : "e1", "source":"/agencies/health","type":"` + schemas.TypeRequested + `",
		"data":{"note":"a \"quoted\" } brace","list":[1,{"x":"]"}]},"subject":"r\u00e91","caseid":"c1","sequence":"0000000001",
		"time":"2026-11-22T09:00:00Z","n":12.5e3,"b":true,"z":null}`)
	a := scan(nats.Header{"Content-Type": {"application/cloudevents+json"}}, body)
	if a.Err != nil {
		t.Fatal(a.Err)
	}
	for f, want := range map[Field]string{ID: "e1", Source: "/agencies/health", Type: schemas.TypeRequested,
		Subject: "ré1", CaseID: "c1", Sequence: "0000000001", Time: "2026-11-22T09:00:00Z"} {
		if got := string(a.Raw(f)); got != want {
			t.Errorf("field %d: %q, want %q", f, got, want)
		}
	}
	if want := `{"note":"a \"quoted\" } brace","list":[1,{"x":"]"}]}`; string(a.Data) != want {
		t.Errorf("data %s, want %s", a.Data, want)
	}
	if a.Binary {
		t.Error("structured message read as binary")
	}
}

func TestScanBinary(t *testing.T) {
	h := nats.Header{"ce-specversion": {"1.0"}, "Ce-Id": {"e2"}, "ce-type": {"t"}, "ce-caseid": {"c2"}, "Content-Type": {"application/json"}}
	a := scan(h, []byte(`{"x":1}`))
	if !a.Binary || a.ID() != "e2" || a.Type() != "t" || a.CaseID() != "c2" || string(a.Data) != `{"x":1}` {
		t.Errorf("binary: %+v", a)
	}
}

func TestScanRejects(t *testing.T) {
	for _, body := range []string{"", "[]", "{", `{"id"}`, `{"id":}`, `{"id":"x"`, `{"id":"x",}`, `{"a":[1,2}`, `{"a":"\"}`, "nope"} {
		if a := scan(nil, []byte(body)); a.Err == nil {
			t.Errorf("%q: no error", body)
		}
	}
}

func TestRoute(t *testing.T) {
	for subject, want := range map[string][2]string{
		"refbus.health.ngo.referral.requested": {"health", "ngo"},
		"refbus.health.ngo.receipt":            {"health", "ngo"},
		"refbus.health.ngo":                    {"", ""},
		"refbus.health.ngo.":                   {"", ""},
		"other.health.ngo.receipt":             {"", ""},
		"refbus..ngo.receipt":                  {"", ""},
	} {
		m := &Msg{Subject: subject}
		if from, to := m.Route(); from != want[0] || to != want[1] {
			t.Errorf("%s: %s, %s; want %v", subject, from, to, want)
		}
	}
}

// FuzzScan checks the scanner against encoding/json: it never panics, and
// on a valid JSON object it reads the same string members (the last of
// duplicates, as encoding/json does).
func FuzzScan(f *testing.F) {
	f.Add([]byte(`{"id":"1","source":"/agencies/health","type":"t","data":{"a":[1,"]"]},"caseid":"c"}`))
	f.Add([]byte(`{"id":"a\\\"b","id":"2","subject":"\u0041"}`))
	f.Add([]byte(` {"time" : "2026-11-22T09:00:00.5Z" , "sequence":1}`))
	f.Fuzz(func(t *testing.T, body []byte) {
		a := ScanBody(body)
		var m map[string]json.RawMessage
		if !json.Valid(body) || json.Unmarshal(body, &m) != nil {
			return
		}
		if a.Err != nil {
			t.Fatalf("valid object %q: %v", body, a.Err)
		}
		for name, f := range map[string]Field{"id": ID, "source": Source, "type": Type, "subject": Subject, "time": Time, "caseid": CaseID} {
			var want string
			if json.Unmarshal(m[name], &want) != nil {
				continue // not a string: shown as written
			}
			if got := string(a.Raw(f)); got != want {
				t.Fatalf("%q: %s is %q, want %q", body, name, got, want)
			}
		}
	})
}
