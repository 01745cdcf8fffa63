package identity

import (
	"fmt"

	"github.com/nats-io/jwt/v2"
	"github.com/nats-io/nkeys"
)

// Kept is an operator as its administrator keeps it on disk: its JWT and
// seed, and its system account's. Whoever holds it can make accounts and
// users: keep it as a secret (mode 0600, off the servers).
type Kept struct {
	Name   string      `json:"name"`
	JWT    string      `json:"jwt"`
	Seed   string      `json:"seed"`
	System KeptAccount `json:"system"`
}

// KeptAccount is an account as its administrator keeps it: its JWT and the
// seed of the signing key its users are signed with.
type KeptAccount struct {
	Name       string `json:"name"`
	JWT        string `json:"jwt"`
	SignerSeed string `json:"signer_seed"`
}

// Keep is o as its administrator keeps it.
func (o *Operator) Keep() (Kept, error) {
	seed, err := o.key.Seed()
	if err != nil {
		return Kept{}, err
	}
	sys, err := o.System.Keep()
	return Kept{Name: o.Name, JWT: o.JWT, Seed: string(seed), System: sys}, err
}

// Keep is a as its administrator keeps it.
func (a *Account) Keep() (KeptAccount, error) {
	seed, err := a.signer.Seed()
	return KeptAccount{Name: a.Name, JWT: a.JWT, SignerSeed: string(seed)}, err
}

// LoadOperator is the operator k keeps.
func LoadOperator(k Kept) (*Operator, error) {
	key, err := nkeys.FromSeed([]byte(k.Seed))
	if err != nil {
		return nil, fmt.Errorf("operator %s: %w", k.Name, err)
	}
	op := &Operator{Name: k.Name, JWT: k.JWT, key: key}
	if op.System, err = LoadAccount(op, k.System); err != nil {
		return nil, err
	}
	return op, nil
}

// LoadAccount is the account of op that k keeps.
func LoadAccount(op *Operator, k KeptAccount) (*Account, error) {
	ac, err := jwt.DecodeAccountClaims(k.JWT)
	if err != nil {
		return nil, fmt.Errorf("account %s: %w", k.Name, err)
	}
	signer, err := nkeys.FromSeed([]byte(k.SignerSeed))
	if err != nil {
		return nil, fmt.Errorf("account %s: signing key: %w", k.Name, err)
	}
	return &Account{Name: k.Name, PublicKey: ac.Subject, JWT: k.JWT, claims: ac, signer: signer, op: op}, nil
}
