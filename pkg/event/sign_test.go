package event

import (
	"encoding/base64"
	"errors"
	"strings"
	"testing"

	ce "github.com/cloudevents/sdk-go/v2/event"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nkeys"
)

func newSigner(t testing.TB) (*Signer, []byte) {
	t.Helper()
	kp, err := nkeys.CreateAccount()
	if err != nil {
		t.Fatal(err)
	}
	seed, err := kp.Seed()
	if err != nil {
		t.Fatal(err)
	}
	s, err := NewSigner(seed)
	if err != nil {
		t.Fatal(err)
	}
	return s, seed
}

func signedEvent(t testing.TB, r *Registry, s *Signer) *ce.Event {
	t.Helper()
	e := newEvent(t, r)
	e.SetSource("/agencies/health")
	e.SetExtension(ExtCaseID, "case-1")
	SetSequence(e, 1)
	if _, err := s.Sign(e); err != nil {
		t.Fatal(err)
	}
	return e
}

// roundTrip sends e through the wire format, as a receiver sees it.
func roundTrip(t testing.TB, e *ce.Event) *ce.Event {
	t.Helper()
	m, err := NewMsg("refbus.health.ngo.requested", e)
	if err != nil {
		t.Fatal(err)
	}
	d, err := Decode(m.Header, m.Data)
	if err != nil {
		t.Fatal(err)
	}
	return d
}

func TestSignVerifyRoundTrip(t *testing.T) {
	r := newRegistry(t)
	s, _ := newSigner(t)
	trust := Trust{"health": s.PublicKey()}
	e := roundTrip(t, signedEvent(t, r, s))
	if err := Verify(e, trust); err != nil {
		t.Fatalf("Verify of a signed event: %v", err)
	}
	if err := r.Validate(e); err != nil {
		t.Fatalf("Validate of a signed event: %v", err)
	}
	if got := stringExt(e, ExtPrevHash); got != GenesisHash {
		t.Errorf("first prevhash = %q, want genesis", got)
	}
}

func TestSignBinaryModeVerifies(t *testing.T) {
	r := newRegistry(t)
	s, _ := newSigner(t)
	e := signedEvent(t, r, s)
	h := nats.Header{}
	h.Set("ce-specversion", "1.0")
	h.Set("ce-id", e.ID())
	h.Set("ce-source", e.Source())
	h.Set("ce-type", e.Type())
	h.Set("ce-subject", e.Subject())
	h.Set("ce-time", e.Time().Format("2006-01-02T15:04:05.999999999Z07:00"))
	h.Set("ce-dataschema", e.DataSchema())
	h.Set("Content-Type", "application/json")
	for k, v := range e.Extensions() {
		h.Set("ce-"+k, v.(string))
	}
	d, err := Decode(h, e.Data())
	if err != nil {
		t.Fatal(err)
	}
	if err := Verify(d, Trust{"health": s.PublicKey()}); err != nil {
		t.Fatalf("Verify of the binary-mode copy: %v", err)
	}
}

func TestVerifyRejects(t *testing.T) {
	r := newRegistry(t)
	s, _ := newSigner(t)
	other, _ := newSigner(t)
	trust := Trust{"health": s.PublicKey()}
	cases := []struct {
		name   string
		change func(e *ce.Event)
		want   error
		msg    string
	}{
		{"unsigned", func(e *ce.Event) { e.SetExtension(ExtSignature, nil) }, ErrUnsigned, "not signed"},
		{"changed data", func(e *ce.Event) {
			e.DataEncoded = []byte(strings.Replace(string(e.Data()), "emergency", "temporary", 1))
		}, ErrBadSignature, "does not match the event"},
		{"changed attribute", func(e *ce.Event) { e.SetExtension(ExtCaseID, "case-2") }, ErrBadSignature, "does not match the event"},
		{"changed prevhash", func(e *ce.Event) { e.SetExtension(ExtPrevHash, strings.Repeat("1", 64)) }, ErrBadSignature, "does not match the event"},
		{"forged source", func(e *ce.Event) { e.SetSource("/agencies/ngo") }, ErrBadSignature, "no trust anchor for node ngo"},
		{"other key", func(e *ce.Event) {
			if err := other.SignUnchained(e); err != nil {
				t.Fatal(err)
			}
		}, ErrBadSignature, "is not the key of node health"},
		{"garbled signature", func(e *ce.Event) { e.SetExtension(ExtSignature, "!!") }, ErrBadSignature, "not base64url"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			e := roundTrip(t, signedEvent(t, r, s))
			c.change(e)
			err := Verify(e, trust)
			if !errors.Is(err, c.want) || !strings.Contains(err.Error(), c.msg) {
				t.Fatalf("Verify = %v, want %v containing %q", err, c.want, c.msg)
			}
		})
	}
}

func TestSignChainsAndIsDeterministic(t *testing.T) {
	r := newRegistry(t)
	s, seed := newSigner(t)
	a, b := newEvent(t, r), newEvent(t, r)
	ha, err := s.Sign(a)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Sign(b); err != nil {
		t.Fatal(err)
	}
	if got := stringExt(b, ExtPrevHash); got != ha {
		t.Fatalf("second prevhash = %s, want the first's hash %s", got, ha)
	}
	// A relay that restarts from the stored head signs the same bytes.
	again, err := NewSigner(seed)
	if err != nil {
		t.Fatal(err)
	}
	again.Restore(ha)
	b2 := b.Clone()
	b2.SetExtension(ExtSignature, nil)
	b2.SetExtension(ExtPrevHash, nil)
	if _, err := again.Sign(&b2); err != nil {
		t.Fatal(err)
	}
	x, _ := Encode(b)
	y, _ := Encode(&b2)
	if string(x) != string(y) {
		t.Fatalf("re-signed event differs:\n%s\n%s", x, y)
	}
	if h, _ := ChainHash(roundTrip(t, b)); h != s.Head() {
		t.Fatalf("chain hash after the wire = %s, want head %s", h, s.Head())
	}
}

func TestCanonicalForm(t *testing.T) {
	e := ce.New()
	e.SetID("1")
	e.SetSource("/agencies/health")
	e.SetType("t")
	e.SetExtension("note", "a\\b\nc")
	e.SetExtension(ExtSignature, "x")
	e.DataEncoded = []byte(`{}`)
	b, err := Canonical(nil, &e)
	if err != nil {
		t.Fatal(err)
	}
	want := "id=1\nnote=a\\\\b\\nc\nsource=/agencies/health\nspecversion=1.0\ntype=t\n" +
		"data_sha256=44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a\n"
	if string(b) != want {
		t.Fatalf("Canonical =\n%s\nwant\n%s", b, want)
	}
}

func TestParseTrust(t *testing.T) {
	s, _ := newSigner(t)
	tr, err := ParseTrust("# anchors\nhealth=" + s.PublicKey() + "\n, ngo = " + s.PublicKey())
	if err != nil {
		t.Fatal(err)
	}
	if tr["health"] != s.PublicKey() || tr["ngo"] != s.PublicKey() || len(tr) != 2 {
		t.Fatalf("ParseTrust = %v", tr)
	}
	if got, err := ParseTrust(tr.String()); err != nil || got.String() != tr.String() {
		t.Fatalf("ParseTrust(String) = %v, %v", got, err)
	}
	for _, bad := range []string{"health", "health=SAxyz", "=" + s.PublicKey()} {
		if _, err := ParseTrust(bad); err == nil {
			t.Errorf("ParseTrust(%q) succeeded", bad)
		}
	}
}

func BenchmarkVerify(b *testing.B) {
	r := newRegistry(b)
	s, _ := newSigner(b)
	e := roundTrip(b, signedEvent(b, r, s))
	trust := Trust{"health": s.PublicKey()}
	for b.Loop() {
		if err := Verify(e, trust); err != nil {
			b.Fatal(err)
		}
	}
}

// The signer keeps the seed's derived key; its signatures are the ones
// nkeys makes from the seed itself.
func TestSignerSignsAsNkeys(t *testing.T) {
	s, seed := newSigner(t)
	kp, err := nkeys.FromSeed(seed)
	if err != nil {
		t.Fatal(err)
	}
	e := newEvent(t, newRegistry(t))
	if err := s.SignUnchained(e); err != nil {
		t.Fatal(err)
	}
	delete(e.Context.AsV1().Extensions, ExtSignature)
	b, err := Canonical(nil, e)
	if err != nil {
		t.Fatal(err)
	}
	want, err := kp.Sign(b)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.SignUnchained(e); err != nil {
		t.Fatal(err)
	}
	if got := stringExt(e, ExtSignature); got != base64.RawURLEncoding.EncodeToString(want) {
		t.Fatalf("signature %s, nkeys signs %s", got, base64.RawURLEncoding.EncodeToString(want))
	}
	curve, err := nkeys.CreateCurveKeys()
	if err != nil {
		t.Fatal(err)
	}
	cseed, _ := curve.Seed()
	if _, err := NewSigner(cseed); err == nil {
		t.Fatal("NewSigner took an X25519 seed")
	}
}
