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
	"strings"
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
// form) under a data key of its own per referral. The sender derives the
// key with HPKE's secret export (RFC 9180, section 5.3: DHKEM X25519,
// HKDF-SHA256, export only) towards the receiving node's sealing key of
// the day, with the referral's id as the exporter context, keeps it with
// the referral, and sends the encapsulation in the request; the receiver
// derives the same key with its private half. One encapsulation serves a
// sender's referrals to a node for an hour at most (the context is then
// dropped from memory), so the key agreement is paid once, not per
// referral. A node makes a sealing key every day (Config.KeyOfTheDay),
// gives it in its listing (signed by the node, whose signing key the
// registry vouches for, where the network has one), and destroys it once
// it has been retired for a while and everything sent to it was taken in
// (destroyRetired). So the stream never holds a data key that a key still
// in existence derives: once a referral's data key is destroyed at its
// two nodes (a revoked consent, an erased person), no one can read its
// events, on the stream or in a copy of its files. Nothing is sent to a
// node that lists no key of the day (an older version, which could not
// open it): a key derived towards its long-term key, which is never
// destroyed, could never be shredded. The HPKE info names
// the receiving node and the key, and the exporter context the referral,
// so a key belongs to one referral at one node. schemas/SEALING.md tells
// the whole scheme.

// errNoKey: a request's data key cannot be derived here, for good.
var errNoKey = errors.New("no key")

// sealInfo is the HPKE info of the contexts towards node to's key kid.
func sealInfo(to, kid string) []byte {
	return []byte("refbus data keys v1|" + to + "|" + kid)
}

// keyContext is the exporter context of referral id's data key.
func keyContext(id uuid.UUID) string { return "refbus data key|" + id.String() }

// contextLife is how long a sender keeps one HPKE context towards a
// node's key: what it could derive again is forgotten after it.
const contextLife = time.Hour

var (
	sealKDF  = hpke.HKDFSHA256()
	sealAEAD = hpke.ExportOnly()
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
	// senders are the contexts towards other nodes' keys, by node, key
	// id and key; recipients those of this node's keys, by key id and
	// encapsulation.
	senders    map[string]*senderContext
	recipients map[string]*hpke.Recipient
	// gen counts the destructions of keys of the day: a recipient
	// context made across one is not cached.
	gen uint64
}

// senderContext is one HPKE context towards a node's key.
type senderContext struct {
	enc  []byte
	s    *hpke.Sender
	made time.Time
}

// loadSealer reads the node's long-term private key: the issued one, or
// else the one in its store, made at first start.
func loadSealer(ctx context.Context, q *coredb.Queries, self string, issued []byte) (*sealer, error) {
	s := &sealer{self: self, q: q, days: map[string]*ecdh.PrivateKey{}, senders: map[string]*senderContext{}, recipients: map[string]*hpke.Recipient{}}
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
		return nil, fmt.Errorf("%w: %s has no sealing key %s: it was wrapped for another node", errNoKey, s.self, id)
	}
	if err != nil {
		return nil, err
	}
	if d.PrivateKey == nil {
		return nil, fmt.Errorf("%w: %s's sealing key %s, which it was wrapped to, was destroyed on %s: no one can open it any more", errNoKey, s.self, id, d.DestroyedAt.UTC().Format(time.RFC3339))
	}
	k, err := ecdh.X25519().NewPrivateKey(d.PrivateKey)
	if err != nil {
		return nil, err
	}
	s.days[id] = k
	return k, nil
}

// maxKeep bounds how long a retired key of the day waits for its node to
// take in what was sent to it: after it, the key is destroyed whatever
// waits (a request still waiting is then refused with that reason).
const maxKeep = 7 * 24 * time.Hour

// destroyRetired destroys the keys of the day retired longer than grace
// ago, once idle says that everything sent to this node was taken in
// (nothing pending, nothing unacknowledged, no dead letter): whatever
// was sent towards them has been opened, and its data keys are kept with
// their referrals. A key retired longer than maxKeep is destroyed
// regardless. It also forgets the sender contexts past their hour. It
// returns how many keys it destroyed, and why it waits, if it does.
func (s *sealer) destroyRetired(ctx context.Context, grace time.Duration, idle func(context.Context) error) (n int, waits error, err error) {
	s.sweepSenders()
	ids, err := s.q.EpochKeyRetiredBefore(ctx, time.Now().Add(-grace))
	if err != nil || len(ids) == 0 {
		return 0, nil, err
	}
	if idle != nil {
		if waits = idle(ctx); waits != nil {
			if ids, err = s.q.EpochKeyRetiredBefore(ctx, time.Now().Add(-maxKeep)); err != nil || len(ids) == 0 {
				return 0, waits, err
			}
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.q.EpochKeyDestroy(ctx, ids); err != nil {
		return 0, waits, fmt.Errorf("destroy retired sealing keys: %w", err)
	}
	for _, id := range ids {
		delete(s.days, id)
	}
	clear(s.recipients)
	s.gen++
	return len(ids), waits, nil
}

// sweepSenders forgets the sender contexts past their hour: what they
// could derive again is gone with them.
func (s *sealer) sweepSenders() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for k, c := range s.senders {
		if time.Since(c.made) > contextLife {
			delete(s.senders, k)
		}
	}
}

// newDataKey derives referral id's data key towards the node of listing
// l's key of the day. wrapped, which the request carries, is the length
// and id of that key and the HPKE encapsulation. A node that lists no key
// of the day (an older version, which could not open a sealed event
// anyway) gets nothing: a key derived towards its long-term key could
// never be shredded.
func (s *sealer) newDataKey(l directory.Listing, id uuid.UUID) (key, wrapped []byte, err error) {
	kid, b64 := l.DayKeyID, l.DayKey
	if b64 == "" || kid == "" {
		return nil, nil, fmt.Errorf("%w: %s lists no sealing key of the day: it runs a version that cannot receive sealed referrals, and must be upgraded", ErrInvalid, l.Node)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	name := l.Node + "|" + kid + "|" + b64
	c := s.senders[name]
	if c == nil || time.Since(c.made) > contextLife {
		raw, err := base64.StdEncoding.DecodeString(b64)
		if err != nil || len(kid) > 255 {
			return nil, nil, fmt.Errorf("%s publishes no usable sealing key in the directory: nothing can be sealed to it", l.Node)
		}
		pub, err := ecdh.X25519().NewPublicKey(raw)
		if err != nil {
			return nil, nil, fmt.Errorf("sealing key of %s: %w", l.Node, err)
		}
		pk, err := hpke.NewDHKEMPublicKey(pub)
		if err != nil {
			return nil, nil, err
		}
		enc, sender, err := hpke.NewSender(pk, sealKDF, sealAEAD, sealInfo(l.Node, kid))
		if err != nil {
			return nil, nil, fmt.Errorf("key agreement with %s: %w", l.Node, err)
		}
		c = &senderContext{enc: enc, s: sender, made: time.Now()}
		s.senders[name] = c
	}
	if key, err = c.s.Export(keyContext(id), event.DataKeySize); err != nil {
		return nil, nil, err
	}
	return key, append(append([]byte{byte(len(kid))}, kid...), c.enc...), nil
}

// dataKeyOf derives referral id's data key from the wrapped key of its
// request, with this node's key it names.
func (s *sealer) dataKeyOf(ctx context.Context, id uuid.UUID, wrapped []byte) ([]byte, error) {
	if len(wrapped) == 0 || len(wrapped) < 1+int(wrapped[0]) {
		return nil, fmt.Errorf("%w: its wrapped data key is too short", errNoKey)
	}
	kid, enc := string(wrapped[1:1+int(wrapped[0])]), wrapped[1+int(wrapped[0]):]
	if kid == "" {
		return nil, fmt.Errorf("%w: its data key names no sealing key of the day", errNoKey)
	}
	name := kid + "|" + string(enc)
	s.mu.Lock()
	r, gen := s.recipients[name], s.gen
	s.mu.Unlock()
	if r == nil {
		priv, err := s.dayKey(ctx, kid)
		if err != nil {
			return nil, fmt.Errorf("its data key cannot be derived: %w", err)
		}
		k, err := hpke.NewDHKEMPrivateKey(priv)
		if err != nil {
			return nil, err
		}
		if r, err = hpke.NewRecipient(enc, k, sealKDF, sealAEAD, sealInfo(s.self, kid)); err != nil {
			return nil, fmt.Errorf("%w: its data key's encapsulation is not one: %v", errNoKey, err)
		}
		s.mu.Lock()
		if len(s.recipients) >= 4096 {
			clear(s.recipients)
		}
		if s.gen == gen { // no key was destroyed meanwhile
			s.recipients[name] = r
		}
		s.mu.Unlock()
	}
	return r.Export(keyContext(id), event.DataKeySize)
}

// NewDataKey derives referral id's data key towards node to, as its
// listing gives its sealing key, and the wrapped key its request carries.
func (a *App) NewDataKey(ctx context.Context, to string, id uuid.UUID) (key, wrapped []byte, err error) {
	l, err := a.dir.Lookup(ctx, to)
	if errors.Is(err, directory.ErrNotListed) {
		return nil, nil, fmt.Errorf("%w: %s is not in the directory: nothing can be sealed to it", ErrInvalid, to)
	}
	if err != nil {
		return nil, nil, err
	}
	return a.seal.newDataKey(l, id)
}

// DataKeyOf derives the data key of referral id, wrapped to this node.
func (a *App) DataKeyOf(ctx context.Context, id uuid.UUID, wrapped []byte) ([]byte, error) {
	return a.seal.dataKeyOf(ctx, id, wrapped)
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
	n, waits, err := a.seal.destroyRetired(ctx, grace, a.idle)
	if waits != nil {
		a.log.Info("retired sealing keys wait", "why", waits)
	}
	if n > 0 {
		a.compactSoon() // the keys' old row versions go too
	}
	return n, err
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
	return a.openEvent(e, func([]byte) ([]byte, error) { return r.DataKey, nil })
}

// openRequest opens a sealed request, with the data key it carries
// wrapped to this node, and returns the key too.
func (a *App) openRequest(ctx context.Context, e *ce.Event, id uuid.UUID) (opened *ce.Event, key []byte, err error) {
	opened, err = a.openEvent(e, func(wrapped []byte) ([]byte, error) {
		if wrapped == nil {
			return nil, inbox.Reject("referral %s comes sealed without its data key", id)
		}
		k, err := a.seal.dataKeyOf(ctx, id, wrapped)
		if errors.Is(err, errNoKey) {
			return nil, inbox.Reject("referral %s: %s", id, strings.TrimPrefix(err.Error(), errNoKey.Error()+": "))
		}
		if err != nil {
			return nil, inbox.Later(err)
		}
		key = k
		return k, nil
	})
	return opened, key, err
}

// openEvent returns a sealed event opened with the key key gives, its
// data checked against the event's schema; the inbox's copy stays
// sealed. A reason for the sender comes back when it cannot be opened or
// breaks its schema.
func (a *App) openEvent(e *ce.Event, key func(wrapped []byte) ([]byte, error)) (*ce.Event, error) {
	if !a.registry.IsSealed(e) {
		if len(a.registry.SealedFields(e.Type())) > 0 {
			return nil, inbox.Reject("a %s event travels sealed to its receiver: this one came in clear", e.Type())
		}
		return e, nil
	}
	opened := e.Clone()
	if err := a.registry.OpenWith(&opened, key); err != nil {
		if !errors.Is(err, event.ErrNotOpened) {
			return nil, err // the key's: a rejection, or later
		}
		return nil, inbox.Reject("%v", err)
	}
	if err := a.registry.Validate(&opened); err != nil {
		// Where, not what: the reason travels back in clear in the receipt.
		var de *event.DataError
		if errors.As(err, &de) {
			return nil, inbox.Reject("what the sealed part holds breaks the schema of %s at %s", e.Type(), strings.Join(de.Places, ", "))
		}
		return nil, inbox.Reject("what the sealed part holds breaks the schema of %s", e.Type())
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
