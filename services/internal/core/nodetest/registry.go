package nodetest

import (
	"crypto/ecdh"
	"crypto/rand"
	"encoding/base64"
	"time"

	"github.com/nats-io/nkeys"

	"github.com/refbus/refbus/services/internal/core"
	"github.com/refbus/refbus/services/internal/network"
)

// Identity is a node's keys as its bundle gives them.
type Identity struct {
	Seed       []byte
	SigningKey string
	Sealing    *ecdh.PrivateKey
}

// SealingKey is the public half of the sealing key, as the registry
// holds it.
func (id Identity) SealingKey() string {
	return base64.StdEncoding.EncodeToString(id.Sealing.PublicKey().Bytes())
}

// WithRegistry makes the network one its administrator runs: it gets a
// network key, and every node started after is registered with keys of
// its own, signed by that key, and trusts the registry, not a list.
func (n *Network) WithRegistry() *Network {
	n.T.Helper()
	kp, err := nkeys.CreateAccount()
	if err != nil {
		n.T.Fatal(err)
	}
	n.mu.Lock()
	n.networkKey, n.ids = kp, map[string]Identity{}
	n.mu.Unlock()
	return n
}

// NetworkKey is the network's key pair (WithRegistry).
func (n *Network) NetworkKey() nkeys.KeyPair { return n.networkKey }

// Anchor is the network's public key.
func (n *Network) Anchor() string {
	pub, err := n.networkKey.PublicKey()
	if err != nil {
		n.T.Fatal(err)
	}
	return pub
}

// NewIdentity makes keys for a node.
func NewIdentity(t interface{ Fatal(...any) }) Identity {
	kp, err := nkeys.CreateAccount()
	if err != nil {
		t.Fatal(err)
	}
	seed, _ := kp.Seed()
	pub, _ := kp.PublicKey()
	sk, err := ecdh.X25519().GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return Identity{Seed: seed, SigningKey: pub, Sealing: sk}
}

// Identity is node name's keys, made and registered as an active node of
// kind, hosting the organization named after it, the first time.
func (n *Network) Identity(name, kind string) Identity {
	n.T.Helper()
	return n.identity(name, kind, []string{name})
}

// identity is Identity, registering the node as hosting orgs.
func (n *Network) identity(name, kind string, orgs []string) Identity {
	n.T.Helper()
	n.mu.Lock()
	id, ok := n.ids[name]
	if !ok {
		id = NewIdentity(n.T)
		n.ids[name] = id
	}
	n.mu.Unlock()
	if !ok {
		n.Register(network.Entry{Node: name, Kind: kind, Organizations: orgs, SigningKey: id.SigningKey, SealingKey: id.SealingKey(), Status: network.Active, Since: time.Now()})
	}
	return id
}

// Register puts e into the registry, signed with the network's key.
func (n *Network) Register(e network.Entry) {
	n.T.Helper()
	kv, err := n.adminJS().KeyValue(n.T.Context(), network.RegistryBucket)
	if err != nil {
		n.T.Fatal(err)
	}
	if err := network.Register(n.T.Context(), kv, n.networkKey, e); err != nil {
		n.T.Fatal(err)
	}
}

// Entry is node name's registry entry.
func (n *Network) Entry(name string) network.Entry {
	n.T.Helper()
	kv, err := n.adminJS().KeyValue(n.T.Context(), network.RegistryBucket)
	if err != nil {
		n.T.Fatal(err)
	}
	v, err := kv.Get(n.T.Context(), name)
	if err != nil {
		n.T.Fatal(err)
	}
	var e network.Entry
	if err := network.Verify(n.Anchor(), v.Value(), &e); err != nil {
		n.T.Fatal(err)
	}
	return e
}

// SetStatus changes node name's status in the registry, from now.
func (n *Network) SetStatus(name string, s network.Status) {
	n.T.Helper()
	e := n.Entry(name)
	e.Status, e.Since = s, time.Now()
	n.Register(e)
}

// registered gives cfg the node's identity and the network's anchor; a
// node registered here the first time hosts the organizations cfg names
// (the one named after it, if none).
func (n *Network) registered(name, kind string, cfg *core.Config) {
	if n.networkKey == nil {
		return
	}
	orgs := []string{name}
	if len(cfg.Organizations) > 0 {
		orgs = orgs[:0]
		for _, o := range cfg.Organizations {
			orgs = append(orgs, o.ID)
		}
	}
	id := n.identity(name, kind, orgs)
	cfg.Anchor, cfg.SigningSeed, cfg.SealingKey = n.Anchor(), id.Seed, id.Sealing.Bytes()
}
