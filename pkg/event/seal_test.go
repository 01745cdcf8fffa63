package event

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"
)

// A sealed event keeps its readable part readable and valid against its
// sealed form, hides what its schema marks sealed, and opens back to the
// event it was; the box opens under its key only, and only on its event.
func TestSealOpen(t *testing.T) {
	r := newRegistry(t)
	e := newEvent(t, r)
	clear := string(e.Data())
	key := NewDataKey()
	if got := r.SealedFields(typeRequested); len(got) != 1 || got[0] != "note" {
		t.Fatalf("SealedFields = %v, want [note]", got)
	}
	if err := r.Seal(e, key, []byte("wrapped")); err != nil {
		t.Fatal(err)
	}
	if !r.IsSealed(e) || e.DataSchema() != "https://schemas.refbus.org/referral.requested.v1.json"+SealedForm {
		t.Fatalf("not sealed: dataschema %q", e.DataSchema())
	}
	var readable map[string]any
	if err := json.Unmarshal(e.Data(), &readable); err != nil {
		t.Fatal(err)
	}
	if _, ok := readable["note"]; ok || readable["to_agency"] != validReferral.ToAgency {
		t.Fatalf("sealed data: %s", e.Data())
	}
	if strings.Contains(string(e.Data()), validReferral.Note) {
		t.Fatalf("the note is readable in %s", e.Data())
	}
	if err := r.Validate(e); err != nil {
		t.Fatalf("the sealed form does not validate: %v", err)
	}
	if w, err := r.WrappedKey(e); err != nil || string(w) != "wrapped" {
		t.Fatalf("WrappedKey = %q, %v", w, err)
	}
	// Another key does not open it; nor does its box on another event.
	other := e.Clone()
	if err := r.Open(&other, NewDataKey()); !errors.Is(err, ErrNotOpened) {
		t.Fatalf("opened with another key: %v", err)
	}
	moved := e.Clone()
	moved.SetID("00000000-0000-7000-8000-000000000001")
	if err := r.Open(&moved, key); !errors.Is(err, ErrNotOpened) {
		t.Fatalf("opened on another event: %v", err)
	}
	if err := r.Open(e, key); err != nil {
		t.Fatal(err)
	}
	if r.IsSealed(e) || e.DataSchema() != "https://schemas.refbus.org/referral.requested.v1.json" {
		t.Fatalf("still sealed: %q", e.DataSchema())
	}
	var back, want map[string]any
	_ = json.Unmarshal(e.Data(), &back)
	_ = json.Unmarshal([]byte(clear), &want)
	if b, _ := json.Marshal(back); string(b) != mustJSON(t, want) {
		t.Fatalf("opened to %s, want %s", e.Data(), clear)
	}
	if err := r.Validate(e); err != nil {
		t.Fatal(err)
	}
}

// The signature covers the sealed form: a box changed after signing
// fails verification, before anyone opens it.
func TestSignatureCoversSealedPart(t *testing.T) {
	r := newRegistry(t)
	s, _ := newSigner(t)
	trust := Trust{"health": s.PublicKey()}
	e := newEvent(t, r)
	e.SetSource("/agencies/health")
	if err := r.Seal(e, NewDataKey(), nil); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Sign(e); err != nil {
		t.Fatal(err)
	}
	if err := Verify(roundTrip(t, e), trust); err != nil {
		t.Fatalf("the sealed event does not verify: %v", err)
	}
	changed := roundTrip(t, e)
	changed.DataEncoded = []byte(strings.Replace(string(changed.Data()), `"box":"`, `"box":"AAAA`, 1))
	if err := Verify(changed, trust); err == nil {
		t.Fatal("a changed sealed part verified")
	}
}

func mustJSON(t *testing.T, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}
