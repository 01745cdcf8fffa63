package agency

import (
	"context"
	"crypto/ecdh"
	"crypto/hpke"
	"crypto/rand"
	"encoding/base64"
	"fmt"

	"github.com/google/uuid"

	"github.com/refbus/refbus/services/internal/db"
)

// Confidential fields (a shelter's address) travel sealed to the one agency
// they are for, with HPKE (RFC 9180: DHKEM X25519, HKDF-SHA256,
// ChaCha20-Poly1305). Each agency keeps its private key in its own store
// and publishes the public key in the service directory. The sealed field
// names its recipient and referral in the HPKE info, so it cannot be moved
// to another referral or agency; the schemas have no clear-text property
// for it, so a sender that forgot to seal is refused on publish.

func sealInfo(to string, referral uuid.UUID) []byte {
	return []byte("refbus confidential v1|" + to + "|" + referral.String())
}

var (
	sealKDF  = hpke.HKDFSHA256()
	sealAEAD = hpke.ChaCha20Poly1305()
)

// loadKey reads this agency's private key, making it at first start.
func (s *Service) loadKey(ctx context.Context) error {
	q := db.New(s.pool)
	k, err := ecdh.X25519().GenerateKey(rand.Reader)
	if err != nil {
		return err
	}
	if err := q.AgencyKeyCreate(ctx, db.AgencyKeyCreateParams{Agency: s.self, PrivateKey: k.Bytes()}); err != nil {
		return fmt.Errorf("store agency key: %w", err)
	}
	b, err := q.AgencyKeyGet(ctx, s.self)
	if err != nil {
		return fmt.Errorf("read agency key: %w", err)
	}
	if s.key, err = ecdh.X25519().NewPrivateKey(b); err != nil {
		return fmt.Errorf("agency key: %w", err)
	}
	return nil
}

// publicKey is this agency's public key as the directory lists it.
func (s *Service) publicKey() string {
	return base64.StdEncoding.EncodeToString(s.key.PublicKey().Bytes())
}

// seal encrypts a confidential field for agency to, about referral id.
func (s *Service) seal(ctx context.Context, to string, id uuid.UUID, plain string) (string, error) {
	l, err := s.listing(ctx, to)
	if err != nil {
		return "", err
	}
	raw, err := base64.StdEncoding.DecodeString(l.PublicKey)
	if err != nil || l.PublicKey == "" {
		return "", fmt.Errorf("%s publishes no usable public key in the directory: a confidential field cannot be sent to it", to)
	}
	pub, err := ecdh.X25519().NewPublicKey(raw)
	if err != nil {
		return "", fmt.Errorf("public key of %s: %w", to, err)
	}
	pk, err := hpke.NewDHKEMPublicKey(pub)
	if err != nil {
		return "", err
	}
	ct, err := hpke.Seal(pk, sealKDF, sealAEAD, sealInfo(to, id), []byte(plain))
	if err != nil {
		return "", fmt.Errorf("seal: %w", err)
	}
	return base64.StdEncoding.EncodeToString(ct), nil
}

// open decrypts a confidential field sealed to this agency.
func (s *Service) open(id uuid.UUID, sealed string) (string, error) {
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

// sealWork is w as it travels to agency to on referral id: its
// confidential fields sealed to that agency.
func (s *Service) sealWork(ctx context.Context, w *Work, to string, id uuid.UUID) (*Work, error) {
	if w == nil || w.Placement == nil || w.Placement.Address == "" {
		return w, nil
	}
	sealed, err := s.seal(ctx, to, id, w.Placement.Address)
	if err != nil {
		return nil, err
	}
	out, p := *w, *w.Placement
	p.Address, p.SealedAddress = "", sealed
	out.Placement = &p
	return &out, nil
}

// openWork opens the confidential fields of w sealed to this agency. One
// that does not open is left sealed: the move still applies.
func (s *Service) openWork(w *Work, id uuid.UUID) *Work {
	if w == nil || w.Placement == nil || w.Placement.SealedAddress == "" {
		return w
	}
	addr, err := s.open(id, w.Placement.SealedAddress)
	if err != nil {
		s.log.Warn("confidential field", "referral_id", id, "err", err)
		return w
	}
	w.Placement.Address, w.Placement.SealedAddress = addr, ""
	return w
}
