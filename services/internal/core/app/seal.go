package app

import (
	"context"
	"crypto/ecdh"
	"crypto/hpke"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"sync"
	"time"

	ce "github.com/cloudevents/sdk-go/v2/event"
	"github.com/google/uuid"

	"github.com/refbus/refbus/pkg/event"
	"github.com/refbus/refbus/pkg/inbox"
	"github.com/refbus/refbus/schemas"
	"github.com/refbus/refbus/services/internal/core/coredb"
	"github.com/refbus/refbus/services/internal/core/directory"
)

// What an event says about the family travels sealed (pkg/event's sealed
// form) under a data key of its own per referral. The sender makes the
// key, keeps it with the referral, and sends it with the request wrapped
// with HPKE (RFC 9180: DHKEM X25519, HKDF-SHA256, ChaCha20-Poly1305) to
// the receiving node's sealing key of the day: a key the node makes
// every day (Config.KeyOfTheDay), gives in its listing (signed by the
// node, whose signing key the registry vouches for, where the network
// has one), and destroys once it has been retired for a while and
// everything sent to it was taken in (destroyRetired). So the stream
// never holds a data key that a key still in existence opens: once a
// referral's data key is destroyed at its two nodes (a revoked consent,
// an erased person), no one can read its events, on the stream or in a
// copy of its files. A node that lists no key of the day (an older
// version) is sent keys wrapped to its long-term sealing key, the one
// the registry holds. The HPKE info names the receiving node, the key
// and the referral, so a wrapped key cannot be moved to another.
// schemas/SEALING.md tells the whole scheme.

func sealInfo(to, kid string, referral uuid.UUID) []byte {
	return []byte("refbus data key v1|" + to + "|" + kid + "|" + referral.String())
}

var (
	sealKDF  = hpke.HKDFSHA256()
	sealAEAD = hpke.ChaCha20Poly1305()
)

// sealer holds this node's private keys: the long-term one and those of
// the day.
type sealer struct {
	self string
	key  *ecdh.PrivateKey
	q    *coredb.Queries
	mu   sync.Mutex
	// day is the key of the day; days caches keys read by id (nil: one
	// destroyed).
	day  coredb.EpochKey
	days map[string]*ecdh.PrivateKey
}

// loadSealer reads the node's long-term private key: the issued one, or
// else the one in its store, made at first start.
func loadSealer(ctx context.Context, q *coredb.Queries, self string, issued []byte) (*sealer, error) {
	s := &sealer{self: self, q: q, days: map[string]*ecdh.PrivateKey{}}
	if issued != nil {
		key, err := ecdh.X25519().NewPrivateKey(issued)
		if err != nil {
			return nil, fmt.Errorf("sealing key (REFBUS_SEALING_KEY): %w", err)
		}
		s.key = key
		return s, nil
	}
	k, err := ecdh.X25519().GenerateKey(rand.Reader)
	if err != nil {
		return nil, err
	}
	if err := q.AgencyKeyCreate(ctx, coredb.AgencyKeyCreateParams{Agency: self, PrivateKey: k.Bytes()}); err != nil {
		return nil, fmt.Errorf("store node key: %w", err)
	}
	b, err := q.AgencyKeyGet(ctx, self)
	if err != nil {
		return nil, fmt.Errorf("read node key: %w", err)
	}
	if s.key, err = ecdh.X25519().NewPrivateKey(b); err != nil {
		return nil, fmt.Errorf("node key: %w", err)
	}
	return s, nil
}

// publicKey is this node's long-term public key as the directory lists
// it.
func (s *sealer) publicKey() string {
	return base64.StdEncoding.EncodeToString(s.key.PublicKey().Bytes())
}

// today is the key of the day, as the listing gives it: its id and
// public half. A new one is made when there is none or it is older than
// life (or now, if force).
func (s *sealer) today(ctx context.Context, life time.Duration, force bool) (id, pub string, err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.day.ID == "" {
		switch d, err := s.q.EpochKeyCurrent(ctx); {
		case err == nil:
			s.day = d
		case !isNoRows(err):
			return "", "", fmt.Errorf("read the sealing key of the day: %w", err)
		}
	}
	if force || s.day.ID == "" || time.Since(s.day.CreatedAt) >= life {
		k, err := ecdh.X25519().GenerateKey(rand.Reader)
		if err != nil {
			return "", "", err
		}
		id := make([]byte, 6)
		_, _ = rand.Read(id)
		d := coredb.EpochKey{ID: hex.EncodeToString(id), PrivateKey: k.Bytes(), PublicKey: k.PublicKey().Bytes(), CreatedAt: time.Now()}
		if err := s.q.EpochKeyCreate(ctx, coredb.EpochKeyCreateParams{ID: d.ID, PrivateKey: d.PrivateKey, PublicKey: d.PublicKey}); err != nil {
			return "", "", fmt.Errorf("store a new sealing key of the day: %w", err)
		}
		s.day, s.days[d.ID] = d, k
	}
	return s.day.ID, base64.StdEncoding.EncodeToString(s.day.PublicKey), nil
}

// dayKey is the private key of the day with id, or why it cannot open
// anything.
func (s *sealer) dayKey(ctx context.Context, id string) (*ecdh.PrivateKey, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if k, ok := s.days[id]; ok && k != nil {
		return k, nil
	}
	d, err := s.q.EpochKeyGet(ctx, id)
	if isNoRows(err) {
		return nil, fmt.Errorf("%s has no sealing key %s: it was wrapped for another node", s.self, id)
	}
	if err != nil {
		return nil, err
	}
	if d.PrivateKey == nil {
		return nil, fmt.Errorf("%s's sealing key %s, which it was wrapped to, was destroyed on %s: no one can open it any more", s.self, id, d.DestroyedAt.UTC().Format(time.RFC3339))
	}
	k, err := ecdh.X25519().NewPrivateKey(d.PrivateKey)
	if err != nil {
		return nil, err
	}
	s.days[id] = k
	return k, nil
}

// destroyRetired destroys the keys of the day retired longer than grace
// ago, once idle says that everything sent to this node was taken in:
// whatever was sent wrapped to them has been opened, and its data keys
// are kept with their referrals. It returns how many it destroyed.
func (s *sealer) destroyRetired(ctx context.Context, grace time.Duration, idle func(context.Context) error) (int, error) {
	ids, err := s.q.EpochKeyRetiredBefore(ctx, time.Now().Add(-grace))
	if err != nil || len(ids) == 0 {
		return 0, err
	}
	if idle != nil {
		if err := idle(ctx); err != nil {
			return 0, nil // not now: something sent to them may wait
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.q.EpochKeyDestroy(ctx, ids); err != nil {
		return 0, fmt.Errorf("destroy retired sealing keys: %w", err)
	}
	for _, id := range ids {
		delete(s.days, id)
	}
	return len(ids), nil
}

// wrapKey wraps referral id's data key to the node of listing l: to its
// key of the day, or to its long-term key if it lists none. The wrapped
// key starts with the length and id of the key it is wrapped to.
func wrapKey(l directory.Listing, id uuid.UUID, key []byte) ([]byte, error) {
	kid, b64 := l.DayKeyID, l.DayKey
	if b64 == "" {
		kid, b64 = "", l.PublicKey
	}
	raw, err := base64.StdEncoding.DecodeString(b64)
	if err != nil || b64 == "" || len(kid) > 255 {
		return nil, fmt.Errorf("%s publishes no usable sealing key in the directory: nothing can be sealed to it", l.Node)
	}
	pub, err := ecdh.X25519().NewPublicKey(raw)
	if err != nil {
		return nil, fmt.Errorf("sealing key of %s: %w", l.Node, err)
	}
	pk, err := hpke.NewDHKEMPublicKey(pub)
	if err != nil {
		return nil, err
	}
	ct, err := hpke.Seal(pk, sealKDF, sealAEAD, sealInfo(l.Node, kid, id), key)
	if err != nil {
		return nil, fmt.Errorf("wrap data key: %w", err)
	}
	return append(append([]byte{byte(len(kid))}, kid...), ct...), nil
}

// unwrapKey opens referral id's data key wrapped to this node.
func (s *sealer) unwrapKey(ctx context.Context, id uuid.UUID, wrapped []byte) ([]byte, error) {
	if len(wrapped) == 0 || len(wrapped) < 1+int(wrapped[0]) {
		return nil, errors.New("its wrapped data key is too short")
	}
	kid, ct := string(wrapped[1:1+int(wrapped[0])]), wrapped[1+int(wrapped[0]):]
	priv := s.key
	if kid != "" {
		var err error
		if priv, err = s.dayKey(ctx, kid); err != nil {
			return nil, fmt.Errorf("its data key cannot be opened: %w", err)
		}
	}
	k, err := hpke.NewDHKEMPrivateKey(priv)
	if err != nil {
		return nil, err
	}
	key, err := hpke.Open(k, sealKDF, sealAEAD, sealInfo(s.self, kid, id), ct)
	if err != nil {
		return nil, fmt.Errorf("its data key was not wrapped to %s for referral %s (it does not open with %s's sealing key)", s.self, id, s.self)
	}
	if len(key) != event.DataKeySize {
		return nil, fmt.Errorf("its data key is %d bytes, not %d", len(key), event.DataKeySize)
	}
	return key, nil
}

// WrapKey wraps referral id's data key to node to, as its listing gives
// its sealing key.
func (a *App) WrapKey(ctx context.Context, to string, id uuid.UUID, key []byte) ([]byte, error) {
	l, err := a.dir.Lookup(ctx, to)
	if errors.Is(err, directory.ErrNotListed) {
		return nil, fmt.Errorf("%w: %s is not in the directory: nothing can be sealed to it", ErrInvalid, to)
	}
	if err != nil {
		return nil, err
	}
	return wrapKey(l, id, key)
}

// UnwrapKey opens a data key wrapped to this node for referral id.
func (a *App) UnwrapKey(ctx context.Context, id uuid.UUID, wrapped []byte) ([]byte, error) {
	return a.seal.unwrapKey(ctx, id, wrapped)
}

// RotateSealingKey makes a new sealing key of the day now, and lists it;
// the one before is retired.
func (a *App) RotateSealingKey(ctx context.Context) error {
	if _, _, err := a.seal.today(ctx, a.cfg.KeyOfTheDay, true); err != nil {
		return err
	}
	return a.publishListing(ctx)
}

// DestroyRetiredKeys destroys the sealing keys of the day retired longer
// than grace ago, if everything sent to this node was taken in; it
// returns how many it destroyed.
func (a *App) DestroyRetiredKeys(ctx context.Context, grace time.Duration) (int, error) {
	return a.seal.destroyRetired(ctx, grace, a.idle)
}

// openMove opens a sealed event about referral r, which this node holds,
// with r's data key. One about a referral made before sealing (it has no
// key, and none was destroyed) may come in clear.
func (a *App) openMove(e *ce.Event, r coredb.Referral) (*ce.Event, error) {
	if r.KeyDestroyedAt != nil {
		return nil, inbox.Reject("the data key of referral %s was destroyed at %s on %s (its consent revoked or the person erased): a sealed event about it cannot be opened any more", r.ID, a.self, r.KeyDestroyedAt.UTC().Format(time.RFC3339))
	}
	if r.DataKey == nil && !a.registry.IsSealed(e) {
		return e, nil
	}
	if r.DataKey == nil {
		return nil, inbox.Reject("referral %s has no data key at %s: it was made before events were sealed, and a sealed event about it cannot be opened", r.ID, a.self)
	}
	return a.openEvent(e, r.DataKey)
}

// openEvent returns a sealed event opened with key, its data checked
// against the event's schema; the inbox's copy stays sealed. A reason for
// the sender comes back when it cannot be opened or breaks its schema.
func (a *App) openEvent(e *ce.Event, key []byte) (*ce.Event, error) {
	if !a.registry.IsSealed(e) {
		if len(a.registry.SealedFields(e.Type())) > 0 {
			return nil, inbox.Reject("a %s event travels sealed to its receiver: this one came in clear", e.Type())
		}
		return e, nil
	}
	opened := e.Clone()
	if err := a.registry.Open(&opened, key); err != nil {
		return nil, inbox.Reject("%v", err)
	}
	if err := a.registry.Validate(&opened); err != nil {
		return nil, inbox.Reject("what the sealed part holds breaks the schema: %v", err)
	}
	return &opened, nil
}

// wireWork is w as it travels to the other party: without the shelter's
// address, which does not leave the shelter (the other party learns
// that the family is placed, and until when, not where).
func wireWork(w *schemas.Work) *schemas.Work {
	if w == nil || w.Placement == nil || (w.Placement.Address == "" && w.Placement.SealedAddress == "") {
		return w
	}
	out, p := *w, *w.Placement
	p.Address, p.SealedAddress = "", ""
	out.Placement = &p
	return &out
}
