// Package identity makes the NATS identities of a refbus deployment with
// NATS decentralized JWT authentication: an operator (the root of trust,
// with the system account nats-server needs), one account per country
// network (its stream, directory and registry, seen by no other network),
// and the users of a network: one per node, whose permissions let it touch
// only what is its own, read-only auditors, and the network's admin, who
// alone makes streams, consumers and buckets.
//
// Suspending a node revokes its user in the account JWT; PushAccount sends
// the new JWT to the servers, which close the node's connections and refuse
// it from then on.
//
// Keys are made with nkeys and claims signed with nats-io/jwt; nothing here
// does cryptography of its own.
package identity

import (
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/jwt/v2"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nkeys"

	"github.com/refbus/refbus/pkg/bus"
	"github.com/refbus/refbus/services/internal/network"
)

// ErrNotNode is returned for a name that cannot name a node (bus.ValidNode).
var ErrNotNode = errors.New("not a node name")

// Operator is the root of trust: it signs the accounts. Its system
// account is the one nats-server uses for its own traffic, and through
// which account JWTs are pushed (PushAccount).
type Operator struct {
	Name string
	// JWT is the operator JWT the servers trust.
	JWT string
	// System is the system account.
	System *Account
	key    nkeys.KeyPair
}

// PublicKey is the operator's public key.
func (o *Operator) PublicKey() string { pub, _ := o.key.PublicKey(); return pub }

// NewOperator makes an operator named name, with its system account.
func NewOperator(name string) (*Operator, error) {
	key, err := nkeys.CreateOperator()
	if err != nil {
		return nil, fmt.Errorf("create operator key: %w", err)
	}
	op := &Operator{Name: name, key: key}
	if op.System, err = newAccount(op, "SYS", false); err != nil {
		return nil, err
	}
	pub, _ := key.PublicKey()
	oc := jwt.NewOperatorClaims(pub)
	oc.Name = name
	oc.SystemAccount = op.System.PublicKey
	if op.JWT, err = oc.Encode(key); err != nil {
		return nil, fmt.Errorf("sign operator %s: %w", name, err)
	}
	return op, nil
}

// Account is a NATS account: a country network, or the operator's system
// account. Its users are signed by a signing key of the account, not by
// the account's own key.
type Account struct {
	Name      string
	PublicKey string
	// JWT is the account JWT, signed by the operator; Revoke and Unrevoke
	// sign it again.
	JWT    string
	claims *jwt.AccountClaims
	signer nkeys.KeyPair
	op     *Operator
}

// NetworkOption configures NewNetwork.
type NetworkOption func(*jwt.AccountClaims)

// JetStreamLimits sets the network's JetStream limits (default: no limit
// on storage, streams and consumers).
func JetStreamLimits(l jwt.JetStreamLimits) NetworkOption {
	return func(ac *jwt.AccountClaims) { ac.Limits.JetStreamLimits = l }
}

// NewNetwork makes the account of a network named name, signed by op,
// with JetStream enabled.
func NewNetwork(op *Operator, name string, opts ...NetworkOption) (*Account, error) {
	return newAccount(op, name, true, opts...)
}

func newAccount(op *Operator, name string, js bool, opts ...NetworkOption) (*Account, error) {
	key, err := nkeys.CreateAccount()
	if err != nil {
		return nil, fmt.Errorf("create account key %s: %w", name, err)
	}
	signer, err := nkeys.CreateAccount()
	if err != nil {
		return nil, fmt.Errorf("create signing key of account %s: %w", name, err)
	}
	pub, _ := key.PublicKey()
	spub, _ := signer.PublicKey()
	ac := jwt.NewAccountClaims(pub)
	ac.Name = name
	ac.SigningKeys.Add(spub)
	// A JWT alone (without its seed) is not enough to connect.
	ac.Limits.DisallowBearer = true
	// A user whose JWT carries no permissions may do nothing.
	ac.DefaultPermissions.Pub.Deny.Add(">")
	ac.DefaultPermissions.Sub.Deny.Add(">")
	if js {
		ac.Limits.JetStreamLimits = jwt.JetStreamLimits{
			MemoryStorage: jwt.NoLimit, DiskStorage: jwt.NoLimit, Streams: jwt.NoLimit, Consumer: jwt.NoLimit,
		}
	}
	for _, o := range opts {
		o(ac)
	}
	a := &Account{Name: name, PublicKey: pub, claims: ac, signer: signer, op: op}
	if err := a.sign(); err != nil {
		return nil, err
	}
	return a, nil
}

func (a *Account) sign() error {
	j, err := a.claims.Encode(a.op.key)
	if err != nil {
		return fmt.Errorf("sign account %s: %w", a.Name, err)
	}
	a.JWT = j
	return nil
}

// Revoke revokes the credentials of the user with public key userKey
// issued up to now, and signs the account JWT again. Push it
// (PushAccount) for the servers to close the user's connections.
func (a *Account) Revoke(userKey string) error {
	if !nkeys.IsValidPublicUserKey(userKey) {
		return fmt.Errorf("revoke %q: not a user public key", userKey)
	}
	a.claims.Revoke(userKey)
	return a.sign()
}

// Unrevoke lifts the revocation of userKey, so that its credentials work
// again, and signs the account JWT again; push it. (Credentials issued
// after a revocation work without this, but only from the next second
// on: a revocation covers what was issued up to its second.)
func (a *Account) Unrevoke(userKey string) error {
	a.claims.ClearRevocation(userKey)
	return a.sign()
}

// User is a user of an account: its keys, its JWT and its permissions.
type User struct {
	Name      string
	PublicKey string
	JWT       string
	// Seed is the user's private key.
	Seed []byte
	// Creds is the .creds file of the user (JWT and seed).
	Creds []byte
	// InboxPrefix is where the user receives replies; it must connect
	// with it (Options does).
	InboxPrefix string
	// Permissions are what the user may publish and subscribe to.
	Permissions jwt.Permissions
}

// Options are the nats options that connect as the user: its JWT and
// seed, its name, and its inbox prefix. A service that reads its .creds
// file instead needs nats.UserCredentials and
// nats.CustomInboxPrefix(InboxPrefix(node)); with nats.IgnoreAuthErrorAbort
// it comes back by itself when it is resumed after a suspension.
func (u *User) Options() []nats.Option {
	opts := []nats.Option{nats.UserJWTAndSeed(u.JWT, string(u.Seed)), nats.Name(u.Name)}
	if u.InboxPrefix != defaultInbox {
		opts = append(opts, nats.CustomInboxPrefix(u.InboxPrefix))
	}
	return opts
}

// defaultInbox is nats.go's inbox prefix, without its final dot.
const defaultInbox = "_INBOX"

// UserOption configures a user.
type UserOption func(*jwt.UserClaims)

// Expires makes the user's credentials expire at t.
func Expires(t time.Time) UserOption {
	return func(uc *jwt.UserClaims) { uc.Expires = t.Unix() }
}

// InboxPrefix is the inbox prefix of node (network.InboxPrefix). Replies
// to the node go there, and it may subscribe nowhere else but to its own
// dead-letter advisories.
var InboxPrefix = network.InboxPrefix

// NodeUser makes the user of node in network n. It may publish only the
// events it sends, pull and ack only its own durable consumer, write only
// its own directory entry, read the directory and the registry, and
// receive only on its own inbox prefix (InboxPrefix) and its own
// dead-letter advisories.
func NodeUser(n *Account, node string, opts ...UserOption) (*User, error) {
	if !bus.ValidNode(node) {
		return nil, fmt.Errorf("node user %q: %w", node, ErrNotNode)
	}
	return newUser(n, node, InboxPrefix(node), NodePermissions(node), opts...)
}

// AuditorUser makes a read-only user named name in network n (see
// AuditorPermissions). It receives replies on _INBOX_AUDIT_<name>.
func AuditorUser(n *Account, name string, opts ...UserOption) (*User, error) {
	if !bus.ValidNode(name) {
		return nil, fmt.Errorf("auditor user %q: %w", name, ErrNotNode)
	}
	prefix := "_INBOX_AUDIT_" + name
	return newUser(n, "audit-"+name, prefix, AuditorPermissions(prefix), opts...)
}

// AdminUser makes the admin of network n: it makes and changes streams,
// consumers and buckets (the whole JetStream API), writes the registry,
// and receives on the default _INBOX prefix.
func AdminUser(n *Account, opts ...UserOption) (*User, error) {
	return newUser(n, "admin", defaultInbox, AdminPermissions(), opts...)
}

// SystemUser makes a user of op's system account that may only push
// account JWTs to the servers (PushAccount).
func SystemUser(op *Operator, opts ...UserOption) (*User, error) {
	var p jwt.Permissions
	p.Pub.Allow.Add("$SYS.REQ.CLAIMS.UPDATE", "$SYS.REQ.ACCOUNT.*.CLAIMS.UPDATE")
	p.Sub.Allow.Add(defaultInbox + ".>")
	return newUser(op.System, "system", defaultInbox, p, opts...)
}

func newUser(a *Account, name, inbox string, p jwt.Permissions, opts ...UserOption) (*User, error) {
	key, err := nkeys.CreateUser()
	if err != nil {
		return nil, fmt.Errorf("create user key %s: %w", name, err)
	}
	pub, _ := key.PublicKey()
	seed, _ := key.Seed()
	uc := jwt.NewUserClaims(pub)
	uc.Name = name
	uc.IssuerAccount = a.PublicKey
	uc.Permissions = p
	for _, o := range opts {
		o(uc)
	}
	j, err := uc.Encode(a.signer)
	if err != nil {
		return nil, fmt.Errorf("sign user %s: %w", name, err)
	}
	creds, err := jwt.FormatUserConfig(j, seed)
	if err != nil {
		return nil, fmt.Errorf("format creds of %s: %w", name, err)
	}
	return &User{Name: name, PublicKey: pub, JWT: j, Seed: seed, Creds: creds, InboxPrefix: inbox, Permissions: uc.Permissions}, nil
}
