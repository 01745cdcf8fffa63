package network

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/nats-io/nkeys"

	"github.com/refbus/refbus/pkg/bus"
)

// Status is where a node stands in its network.
type Status string

const (
	// Active nodes send and receive.
	Active Status = "active"
	// Suspended nodes may not send: NATS refuses their connection and the
	// others reject their events made since the suspension. Resume makes
	// them active again.
	Suspended Status = "suspended"
	// Removed nodes have left the network for good.
	Removed Status = "removed"
)

// Entry is a node as the network's administrator registered it: the one
// source of truth for which node hosts which organizations and which keys
// are its.
type Entry struct {
	Network string `json:"network"`
	Node    string `json:"node"`
	Kind    string `json:"kind"`
	// Organizations are the ids of the organizations the node may list
	// in the directory and send for.
	Organizations []string `json:"organizations"`
	// User is the public key of the node's NATS user.
	User string `json:"user"`
	// SigningKey checks the node's events, receipts and listings (an
	// nkeys public key).
	SigningKey string `json:"signing_key"`
	// SealingKey is the node's X25519 public key (base64) that data for
	// it is sealed to.
	SealingKey string `json:"sealing_key"`
	Status     Status `json:"status"`
	// Since is when the node took its status.
	Since time.Time `json:"since"`
	// RevokedTokens are the ids (jti) of bearer tokens for the node's
	// systems that its administrator revoked before they expire.
	RevokedTokens []string `json:"revoked_tokens,omitempty"`
}

// Hosts reports whether the entry's node hosts organization org.
func (e Entry) Hosts(org string) bool { return slices.Contains(e.Organizations, org) }

// Signed is a value as the registry and the directory keep it: its JSON,
// and a signature of exactly those bytes.
type Signed struct {
	Value     json.RawMessage `json:"value"`
	Signer    string          `json:"signer"`
	Signature string          `json:"signature"`
}

// ErrUnverified: a registry entry or a listing is not signed by the key
// it must be signed by. The message says which and why.
var ErrUnverified = errors.New("signature does not verify")

// ErrNotRegistered: the registry has no entry for the node.
var ErrNotRegistered = errors.New("not registered in the network")

// Sign is v as JSON, signed with key (Signed).
func Sign(key nkeys.KeyPair, v any) ([]byte, error) {
	raw, err := json.Marshal(v)
	if err != nil {
		return nil, err
	}
	pub, err := key.PublicKey()
	if err != nil {
		return nil, err
	}
	sig, err := key.Sign(raw)
	if err != nil {
		return nil, fmt.Errorf("sign: %w", err)
	}
	return json.Marshal(Signed{Value: raw, Signer: pub, Signature: base64.RawURLEncoding.EncodeToString(sig)})
}

// Verify reads b, a Signed value, into v, if it is signed by want (an
// nkeys public key). Errors wrap ErrUnverified.
func Verify(want string, b []byte, v any) error {
	var s Signed
	if err := json.Unmarshal(b, &s); err != nil {
		return fmt.Errorf("%w: not a signed value: %w", ErrUnverified, err)
	}
	if s.Signer != want {
		return fmt.Errorf("%w: signed by %.12s…, not by %.12s…", ErrUnverified, s.Signer, want)
	}
	kp, err := nkeys.FromPublicKey(want)
	if err != nil {
		return fmt.Errorf("%w: key %q: %w", ErrUnverified, want, err)
	}
	sig, err := base64.RawURLEncoding.DecodeString(s.Signature)
	if err != nil || kp.Verify(s.Value, sig) != nil {
		return fmt.Errorf("%w: the signature of %.12s… does not match", ErrUnverified, want)
	}
	if err := json.Unmarshal(s.Value, v); err != nil {
		return fmt.Errorf("signed value: %w", err)
	}
	return nil
}

// Register puts e, signed with the network's key, into the registry.
func Register(ctx context.Context, kv jetstream.KeyValue, key nkeys.KeyPair, e Entry) error {
	if !bus.ValidNode(e.Node) {
		return fmt.Errorf("register: %q is not a node name", e.Node)
	}
	b, err := Sign(key, e)
	if err != nil {
		return err
	}
	if _, err := kv.Put(ctx, e.Node, b); err != nil {
		return fmt.Errorf("register %s: %w", e.Node, err)
	}
	return nil
}

// Registry is a node's view of its network's registry: every entry
// checked against the network's key, kept up to date by Watch.
type Registry struct {
	kv     jetstream.KeyValue
	anchor string
	log    *slog.Logger

	mu      sync.RWMutex
	entries map[string]Entry
}

// NewRegistry reads the registry in kv, trusting entries signed by anchor
// (the network's public key) and no others.
func NewRegistry(kv jetstream.KeyValue, anchor string, log *slog.Logger) (*Registry, error) {
	if _, err := nkeys.FromPublicKey(anchor); err != nil {
		return nil, fmt.Errorf("network key (REFBUS_ANCHOR) %q: %w", anchor, err)
	}
	return &Registry{kv: kv, anchor: anchor, log: log, entries: map[string]Entry{}}, nil
}

// Load reads every entry once; Watch keeps them up to date after.
func (r *Registry) Load(ctx context.Context) error {
	keys, err := r.kv.Keys(ctx)
	if errors.Is(err, jetstream.ErrNoKeysFound) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("read registry: %w", err)
	}
	for _, k := range keys {
		e, err := r.kv.Get(ctx, k)
		if errors.Is(err, jetstream.ErrKeyNotFound) {
			continue
		}
		if err != nil {
			return fmt.Errorf("read registry: %w", err)
		}
		r.apply(e)
	}
	return nil
}

// Watch keeps the registry up to date until ctx ends.
func (r *Registry) Watch(ctx context.Context) error {
	w, err := r.kv.WatchAll(ctx)
	if ctx.Err() != nil {
		return nil
	}
	if err != nil {
		return fmt.Errorf("watch registry: %w", err)
	}
	defer func() { _ = w.Stop() }()
	for {
		select {
		case <-ctx.Done():
			return nil
		case e, ok := <-w.Updates():
			if !ok {
				return nil
			}
			if e != nil {
				r.apply(e)
			}
		}
	}
}

func (r *Registry) apply(kve jetstream.KeyValueEntry) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if kve.Operation() != jetstream.KeyValuePut {
		delete(r.entries, kve.Key())
		return
	}
	var e Entry
	err := Verify(r.anchor, kve.Value(), &e)
	if err == nil && e.Node != kve.Key() {
		err = fmt.Errorf("%w: the entry names node %s", ErrUnverified, e.Node)
	}
	if err != nil {
		r.log.Warn("registry entry ignored", "key", kve.Key(), "err", err)
		delete(r.entries, kve.Key())
		return
	}
	r.entries[kve.Key()] = e
}

// Lookup is node's entry.
func (r *Registry) Lookup(node string) (Entry, error) {
	r.mu.RLock()
	e, ok := r.entries[node]
	r.mu.RUnlock()
	if ok {
		return e, nil
	}
	// A node registered a moment ago may be in the bucket before the
	// watch brings it: its listing must not be ignored for that.
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	e, err := r.Reread(ctx, node)
	if err != nil && !errors.Is(err, ErrNotRegistered) {
		return e, fmt.Errorf("%s: %w", node, ErrNotRegistered)
	}
	return e, err
}

// Reread is node's entry as the bucket holds it now, read past the watch
// (which may not have brought a change yet): for a refusal that must not
// rest on a view a moment old. ErrNotRegistered when the bucket has none.
func (r *Registry) Reread(ctx context.Context, node string) (Entry, error) {
	kve, err := r.kv.Get(ctx, node)
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		r.mu.Lock()
		delete(r.entries, node)
		r.mu.Unlock()
		return Entry{}, fmt.Errorf("%s: %w", node, ErrNotRegistered)
	}
	if err != nil {
		return Entry{}, fmt.Errorf("read the registry's entry of %s: %w", node, err)
	}
	r.apply(kve)
	r.mu.RLock()
	e, ok := r.entries[node]
	r.mu.RUnlock()
	if !ok {
		return e, fmt.Errorf("%s: %w", node, ErrNotRegistered)
	}
	return e, nil
}

// Entries are the registry's entries, by node.
func (r *Registry) Entries() []Entry {
	r.mu.RLock()
	defer r.mu.RUnlock()
	out := make([]Entry, 0, len(r.entries))
	for _, e := range r.entries {
		out = append(out, e)
	}
	slices.SortFunc(out, func(a, b Entry) int { return strings.Compare(a.Node, b.Node) })
	return out
}

// SigningKey is the key that signs node's events made at time at: none
// for a node the registry does not hold, nor for one suspended or removed
// before at. It makes the registry the receivers' trust anchor
// (event.Keys).
func (r *Registry) SigningKey(node string, at time.Time) (string, error) {
	e, err := r.Lookup(node)
	if err != nil {
		return "", err
	}
	if e.Status != Active && !at.Before(e.Since) {
		return "", fmt.Errorf("node %s is %s since %s", node, e.Status, e.Since.UTC().Format(time.RFC3339))
	}
	return e.SigningKey, nil
}
