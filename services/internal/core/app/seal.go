package app

import (
	"context"
	"crypto/ecdh"
	"crypto/hpke"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"

	"github.com/google/uuid"

	"github.com/refbus/refbus/schemas"
	"github.com/refbus/refbus/services/internal/core/coredb"
	"github.com/refbus/refbus/services/internal/core/directory"
)

// Confidential fields (a shelter's address) travel sealed to the one node
// they are for, with HPKE (RFC 9180: DHKEM X25519, HKDF-SHA256,
// ChaCha20-Poly1305). Each node keeps its private key in its own store and
// publishes the public key in the service directory. The sealed field
// names its recipient and referral in the HPKE info, so it cannot be moved
// to another referral or node; the schemas have no clear-text property
// for it, so a sender that forgot to seal is refused on publish.

func sealInfo(to string, referral uuid.UUID) []byte {
	return []byte("refbus confidential v1|" + to + "|" + referral.String())
}

var (
	sealKDF  = hpke.HKDFSHA256()
	sealAEAD = hpke.ChaCha20Poly1305()
)

// sealer holds this node's private key.
type sealer struct {
	self string
	key  *ecdh.PrivateKey
}

// loadSealer reads the node's private key: the issued one, or else the
// one in its store, made at first start.
func loadSealer(ctx context.Context, q *coredb.Queries, self string, issued []byte) (*sealer, error) {
	if issued != nil {
		key, err := ecdh.X25519().NewPrivateKey(issued)
		if err != nil {
			return nil, fmt.Errorf("sealing key (REFBUS_SEALING_KEY): %w", err)
		}
		return &sealer{self: self, key: key}, nil
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
	key, err := ecdh.X25519().NewPrivateKey(b)
	if err != nil {
		return nil, fmt.Errorf("node key: %w", err)
	}
	return &sealer{self: self, key: key}, nil
}

// publicKey is this node's public key as the directory lists it.
func (s *sealer) publicKey() string {
	return base64.StdEncoding.EncodeToString(s.key.PublicKey().Bytes())
}

// seal encrypts a confidential field for the node of listing l, about
// referral id.
func seal(l directory.Listing, id uuid.UUID, plain string) (string, error) {
	raw, err := base64.StdEncoding.DecodeString(l.PublicKey)
	if err != nil || l.PublicKey == "" {
		return "", fmt.Errorf("%s publishes no usable public key in the directory: a confidential field cannot be sent to it", l.Node)
	}
	pub, err := ecdh.X25519().NewPublicKey(raw)
	if err != nil {
		return "", fmt.Errorf("public key of %s: %w", l.Node, err)
	}
	pk, err := hpke.NewDHKEMPublicKey(pub)
	if err != nil {
		return "", err
	}
	ct, err := hpke.Seal(pk, sealKDF, sealAEAD, sealInfo(l.Node, id), []byte(plain))
	if err != nil {
		return "", fmt.Errorf("seal: %w", err)
	}
	return base64.StdEncoding.EncodeToString(ct), nil
}

// open decrypts a confidential field sealed to this node.
func (s *sealer) open(id uuid.UUID, sealed string) (string, error) {
	ct, err := base64.StdEncoding.DecodeString(sealed)
	if err != nil {
		return "", fmt.Errorf("sealed field is not base64: %w", err)
	}
	k, err := hpke.NewDHKEMPrivateKey(s.key)
	if err != nil {
		return "", err
	}
	plain, err := hpke.Open(k, sealKDF, sealAEAD, sealInfo(s.self, id), ct)
	if err != nil {
		return "", fmt.Errorf("open sealed field: %w", err)
	}
	return string(plain), nil
}

// Seal seals a confidential field to node to, about referral id, as a
// move's work carries it.
func (a *App) Seal(ctx context.Context, to string, id uuid.UUID, plain string) (string, error) {
	l, err := a.dir.Lookup(ctx, to)
	if errors.Is(err, directory.ErrNotListed) {
		return "", fmt.Errorf("%w: %s is not in the directory: a confidential field cannot be sent to it", ErrInvalid, to)
	}
	if err != nil {
		return "", err
	}
	return seal(l, id, plain)
}

// Open opens a confidential field sealed to this node.
func (a *App) Open(id uuid.UUID, sealed string) (string, error) { return a.seal.open(id, sealed) }

// sealWork is w as it travels to node to on referral id: its confidential
// fields sealed to that node.
func (a *App) sealWork(ctx context.Context, w *schemas.Work, to string, id uuid.UUID) (*schemas.Work, error) {
	if w == nil || w.Placement == nil || w.Placement.Address == "" {
		return w, nil
	}
	sealed, err := a.Seal(ctx, to, id, w.Placement.Address)
	if err != nil {
		return nil, err
	}
	out, p := *w, *w.Placement
	p.Address, p.SealedAddress = "", sealed
	out.Placement = &p
	return &out, nil
}

// openWork opens the confidential fields of w sealed to this node. One
// that does not open is left sealed: the move still applies.
func (a *App) openWork(w *schemas.Work, id uuid.UUID) *schemas.Work {
	if w == nil || w.Placement == nil || w.Placement.SealedAddress == "" {
		return w
	}
	addr, err := a.seal.open(id, w.Placement.SealedAddress)
	if err != nil {
		a.log.Warn("confidential field", "referral_id", id, "err", err)
		return w
	}
	w.Placement.Address, w.Placement.SealedAddress = addr, ""
	return w
}
