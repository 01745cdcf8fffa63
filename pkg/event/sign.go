package event

import (
	"bytes"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync"
	"time"

	ce "github.com/cloudevents/sdk-go/v2/event"
	"github.com/cloudevents/sdk-go/v2/types"
	"github.com/nats-io/nkeys"
)

// Extension attributes of a signed event (schemas/SIGNING.md says exactly
// what they cover, so that another implementation can check them).
const (
	// ExtSignature is the Ed25519 signature of the event's canonical form,
	// base64url without padding.
	ExtSignature = "signature"
	// ExtSigner is the nkeys public key of the signing node.
	ExtSigner = "signer"
	// ExtPrevHash is the chain hash (hex SHA-256) of the sender's previous
	// chained event, or GenesisHash on its first.
	ExtPrevHash = "prevhash"
)

// GenesisHash is the prevhash of a sender's first chained event.
var GenesisHash = strings.Repeat("0", 64)

var (
	// ErrUnsigned reports an event without a signature or signer.
	ErrUnsigned = errors.New("event is not signed")
	// ErrBadSignature wraps every other signature failure: an untrusted
	// signer, a source without a trust anchor, a signature that does not
	// match.
	ErrBadSignature = errors.New("bad signature")
)

// Canonical appends to dst the canonical form of e: one line per context
// attribute present (extensions included) except signature, sorted by name,
// each "name=value\n" with backslash and newline in the value escaped as
// "\\" and "\n"; then "data_sha256=" and the hex SHA-256 of the data bytes.
// Values are the CloudEvents canonical string forms (time in RFC 3339 UTC,
// as types.Format writes it). This is what the signature covers.
func Canonical(dst []byte, e *ce.Event) ([]byte, error) {
	return canonical(dst, e, false)
}

func canonical(dst []byte, e *ce.Event, withSig bool) ([]byte, error) {
	if e == nil || e.Context == nil {
		return nil, errors.New("canonical form: event has no context")
	}
	ec := e.Context.AsV1()
	type attr struct{ name, value string }
	attrs := make([]attr, 0, 8+len(ec.Extensions))
	add := func(name, value string) { attrs = append(attrs, attr{name, value}) }
	add("specversion", ec.GetSpecVersion())
	add("id", ec.ID)
	add("source", ec.Source.String())
	add("type", ec.Type)
	if ec.Subject != nil {
		add("subject", *ec.Subject)
	}
	if ec.Time != nil {
		add("time", types.FormatTime(ec.Time.Time))
	}
	if ec.DataSchema != nil {
		add("dataschema", ec.DataSchema.String())
	}
	if ec.DataContentType != nil {
		add("datacontenttype", *ec.DataContentType)
	}
	for name, v := range ec.Extensions {
		if name == ExtSignature && !withSig {
			continue
		}
		s, err := types.Format(v)
		if err != nil {
			return nil, fmt.Errorf("canonical form: extension %s: %w", name, err)
		}
		add(name, s)
	}
	slices.SortFunc(attrs, func(a, b attr) int { return strings.Compare(a.name, b.name) })
	for _, a := range attrs {
		dst = append(dst, a.name...)
		dst = append(dst, '=')
		dst = appendEscaped(dst, a.value)
		dst = append(dst, '\n')
	}
	sum := sha256.Sum256(e.Data())
	dst = append(dst, "data_sha256="...)
	dst = hex.AppendEncode(dst, sum[:])
	return append(dst, '\n'), nil
}

func appendEscaped(dst []byte, s string) []byte {
	if !strings.ContainsAny(s, "\\\n") {
		return append(dst, s...)
	}
	for i := 0; i < len(s); i++ {
		switch s[i] {
		case '\\':
			dst = append(dst, '\\', '\\')
		case '\n':
			dst = append(dst, '\\', 'n')
		default:
			dst = append(dst, s[i])
		}
	}
	return dst
}

// ChainHash is the hex SHA-256 of the canonical form of e with its
// signature line included: the value the sender's next chained event
// carries as prevhash.
func ChainHash(e *ce.Event) (string, error) {
	b, err := canonical(make([]byte, 0, 512), e, true)
	if err != nil {
		return "", err
	}
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:]), nil
}

// Signer signs the events of one node with its nkeys seed and keeps the
// head of one hash chain. It is safe for concurrent use; the order of a
// chain is the order of the calls to Sign.
type Signer struct {
	// key is the seed's Ed25519 key, derived once: nkeys derives it again
	// on every Sign, about 40% of what signing cost.
	key ed25519.PrivateKey
	pub string

	mu   sync.Mutex
	head string
}

// NewSigner returns a signer for seed (an nkeys seed, "S..."), its chain
// starting at GenesisHash until Restore says otherwise.
func NewSigner(seed []byte) (*Signer, error) {
	kp, err := nkeys.FromSeed(bytes.TrimSpace(seed))
	if err != nil {
		return nil, fmt.Errorf("signing seed: %w", err)
	}
	defer kp.Wipe()
	pub, err := kp.PublicKey()
	if err != nil {
		return nil, fmt.Errorf("signing seed: %w", err)
	}
	prefix, raw, err := nkeys.DecodeSeed(bytes.TrimSpace(seed))
	if err != nil {
		return nil, fmt.Errorf("signing seed: %w", err)
	}
	if prefix == nkeys.PrefixByteCurve {
		return nil, errors.New("signing seed: an X25519 (curve) seed cannot sign: give an Ed25519 nkeys seed")
	}
	return &Signer{key: ed25519.NewKeyFromSeed(raw), pub: pub, head: GenesisHash}, nil
}

// PublicKey is the nkeys public key that checks this signer's signatures:
// the node's trust anchor.
func (s *Signer) PublicKey() string { return s.pub }

// Head is the chain hash of the last event Sign signed (GenesisHash before
// the first).
func (s *Signer) Head() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.head
}

// Restore sets the chain head, from the last chain hash the sender stored;
// "" means no event was chained yet.
func (s *Signer) Restore(head string) {
	if head == "" {
		head = GenesisHash
	}
	s.mu.Lock()
	s.head = head
	s.mu.Unlock()
}

// Sign chains and signs e: it sets prevhash to the head, signer and
// signature, and returns e's chain hash, which becomes the head. The same
// event signed after the same head gives the same bytes: Ed25519 is
// deterministic.
func (s *Signer) Sign(e *ce.Event) (string, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	e.SetExtension(ExtPrevHash, s.head)
	if err := s.SignUnchained(e); err != nil {
		return "", err
	}
	h, err := ChainHash(e)
	if err != nil {
		return "", err
	}
	s.head = h
	return h, nil
}

// SignUnchained sets signer and signature on e without touching the chain.
func (s *Signer) SignUnchained(e *ce.Event) error {
	e.SetExtension(ExtSigner, s.pub)
	delete(e.Context.AsV1().Extensions, ExtSignature) // AsV1 of a V1 context is itself
	b, err := Canonical(make([]byte, 0, 512), e)
	if err != nil {
		return fmt.Errorf("sign event: %w", err)
	}
	sig := ed25519.Sign(s.key, b)
	e.SetExtension(ExtSignature, base64.RawURLEncoding.EncodeToString(sig))
	return nil
}

// PrevHash returns the prevhash extension of e, or "" when it has none.
func PrevHash(e *ce.Event) string { return stringExt(e, ExtPrevHash) }

// Keys says which key signs a node's events: a fixed list (Trust) or a
// registry read at runtime, where nodes join and are suspended.
type Keys interface {
	// SigningKey is the nkeys public key that signs node's events made at
	// time at; the error says why there is none (an unknown node, one
	// suspended since before at), for an operator to read.
	SigningKey(node string, at time.Time) (string, error)
}

// Trust maps each node to the nkeys public key its events must be signed
// with: the trust anchors, as a fixed list.
type Trust map[string]string

// SigningKey is the key of node in t.
func (t Trust) SigningKey(node string, _ time.Time) (string, error) {
	k, ok := t[node]
	if !ok {
		return "", fmt.Errorf("no trust anchor for node %s", node)
	}
	return k, nil
}

// ParseTrust reads trust anchors written as "node=PUBLICKEY" entries,
// separated by commas or new lines; blank lines and lines starting with #
// are skipped. Each key must be an nkeys public key.
func ParseTrust(s string) (Trust, error) {
	t := Trust{}
	for _, line := range strings.FieldsFunc(s, func(r rune) bool { return r == ',' || r == '\n' }) {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		node, key, ok := strings.Cut(line, "=")
		node, key = strings.TrimSpace(node), strings.TrimSpace(key)
		if !ok || node == "" {
			return nil, fmt.Errorf("trust anchor %q: want node=PUBLICKEY", line)
		}
		if _, err := publicKey(key); err != nil {
			return nil, fmt.Errorf("trust anchor of %s: %w", node, err)
		}
		t[node] = key
	}
	return t, nil
}

// String writes t as ParseTrust reads it, sorted by node.
func (t Trust) String() string {
	var b strings.Builder
	for _, a := range slices.Sorted(maps.Keys(t)) {
		if b.Len() > 0 {
			b.WriteByte(',')
		}
		b.WriteString(a + "=" + t[a])
	}
	return b.String()
}

// publicKeys caches decoded public keys, so that a key is decoded once
// rather than for every event it checks.
var publicKeys sync.Map

func publicKey(s string) (nkeys.KeyPair, error) {
	if kp, ok := publicKeys.Load(s); ok {
		return kp.(nkeys.KeyPair), nil
	}
	kp, err := nkeys.FromPublicKey(s)
	if err != nil {
		return nil, fmt.Errorf("public key %q: %w", s, err)
	}
	publicKeys.Store(s, kp)
	return kp, nil
}

// Verify checks that e is signed by the trust anchor of the node its
// source names (/agencies/<node>). Errors wrap ErrUnsigned or
// ErrBadSignature, with a message an operator can read.
func Verify(e *ce.Event, trust Keys) error {
	s, err := Prepare(e, trust)
	if err != nil {
		return err
	}
	return s.Check()
}

// Signed is an event's signature, ready to check: Verify in two steps, so
// that an auditor can do the cheap checks at once and the Ed25519 one
// later, or only for the last of a run of chained events, whose signature
// vouches for every event before it (schemas/SIGNING.md).
type Signed struct {
	node string
	msg  []byte
	sig  []byte
	key  nkeys.KeyPair
}

// Prepare does every check of Verify but the signature's own: e is signed,
// its source a node with a trust anchor, its signer that anchor.
func Prepare(e *ce.Event, trust Keys) (*Signed, error) {
	sig, signer := stringExt(e, ExtSignature), stringExt(e, ExtSigner)
	if sig == "" || signer == "" {
		return nil, fmt.Errorf("%w: no %s or %s attribute", ErrUnsigned, ExtSignature, ExtSigner)
	}
	node, ok := strings.CutPrefix(e.Source(), "/agencies/")
	if !ok {
		return nil, fmt.Errorf("%w: source %q is not a node", ErrBadSignature, e.Source())
	}
	want, err := trust.SigningKey(node, e.Time())
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrBadSignature, err)
	}
	if signer != want {
		return nil, fmt.Errorf("%w: signer %s is not the key of node %s", ErrBadSignature, signer, node)
	}
	raw, err := base64.RawURLEncoding.DecodeString(sig)
	if err != nil {
		return nil, fmt.Errorf("%w: signature is not base64url", ErrBadSignature)
	}
	kp, err := publicKey(signer)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrBadSignature, err)
	}
	msg, err := Canonical(nil, e)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrBadSignature, err)
	}
	return &Signed{node: node, msg: msg, sig: raw, key: kp}, nil
}

// Check checks the signature; the error wraps ErrBadSignature.
func (s *Signed) Check() error {
	if err := s.key.Verify(s.msg, s.sig); err != nil {
		return fmt.Errorf("%w: signature of node %s does not match the event", ErrBadSignature, s.node)
	}
	return nil
}
