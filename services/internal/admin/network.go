package admin

import (
	"context"
	"crypto/ecdh"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/nats-io/nkeys"

	"github.com/refbus/refbus/pkg/bus"
	"github.com/refbus/refbus/services/internal/core"
	"github.com/refbus/refbus/services/internal/identity"
	"github.com/refbus/refbus/services/internal/network"
)

// Network is one country's network as its administrator keeps it.
type Network struct {
	Name     string
	Settings Settings
	dir      string
	admin    *Admin
	account  *identity.Account
	key      nkeys.KeyPair
	person   string
}

// kept is network.json.
type kept struct {
	Account identity.KeptAccount `json:"account"`
	// RegistryKey signs the registry: its public key is the nodes' trust
	// anchor (REFBUS_ANCHOR).
	RegistryKey string `json:"registry_key"`
	// PersonKey (hex) turns national ids into the pseudonyms every node
	// of the network matches people by (REFBUS_NETWORK_KEY).
	PersonKey string   `json:"person_key"`
	Settings  Settings `json:"settings"`
}

// CreateNetwork makes the network name (its NATS account, admin user and
// registry key) in the directory and adds it to server.conf. Push and
// Provision then bring it to running servers.
func (a *Admin) CreateNetwork(name string, s Settings) (*Network, error) {
	if !bus.ValidNode(name) {
		return nil, fmt.Errorf("network name %q: use lowercase letters and digits, such as kz", name)
	}
	dir := filepath.Join(a.dir, name)
	if _, err := os.Stat(filepath.Join(dir, "network.json")); err == nil {
		return nil, fmt.Errorf("network %s exists already in %s", name, a.dir)
	}
	acc, err := identity.NewNetwork(a.op, name)
	if err != nil {
		return nil, err
	}
	key, err := nkeys.CreateAccount()
	if err != nil {
		return nil, err
	}
	person := make([]byte, 32)
	if _, err := rand.Read(person); err != nil {
		return nil, err
	}
	n := &Network{Name: name, Settings: s, dir: dir, admin: a, account: acc, key: key, person: hex.EncodeToString(person)}
	if err := n.save(); err != nil {
		return nil, err
	}
	adm, err := identity.AdminUser(acc)
	if err != nil {
		return nil, err
	}
	if err := os.WriteFile(filepath.Join(dir, "admin.creds"), adm.Creds, 0o600); err != nil {
		return nil, err
	}
	return n, a.writeServerConfig()
}

// Network opens the network name of the directory.
func (a *Admin) Network(name string) (*Network, error) {
	dir := filepath.Join(a.dir, name)
	var k kept
	if err := readJSON(filepath.Join(dir, "network.json"), &k); errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("no network %s in %s (refbus-admin network create %s)", name, a.dir, name)
	} else if err != nil {
		return nil, err
	}
	acc, err := identity.LoadAccount(a.op, k.Account)
	if err != nil {
		return nil, err
	}
	key, err := nkeys.FromSeed([]byte(k.RegistryKey))
	if err != nil {
		return nil, fmt.Errorf("network %s: registry key: %w", name, err)
	}
	return &Network{Name: name, Settings: k.Settings, dir: dir, admin: a, account: acc, key: key, person: k.PersonKey}, nil
}

func (n *Network) save() error {
	acc, err := n.account.Keep()
	if err != nil {
		return err
	}
	seed, err := n.key.Seed()
	if err != nil {
		return err
	}
	return writeJSON(filepath.Join(n.dir, "network.json"), kept{Account: acc, RegistryKey: string(seed), PersonKey: n.person, Settings: n.Settings})
}

// Anchor is the network's public key: the trust anchor of its nodes.
func (n *Network) Anchor() string {
	pub, _ := n.key.PublicKey()
	return pub
}

// Account is the network's NATS account.
func (n *Network) Account() *identity.Account { return n.account }

// AdminCreds is the path of the network admin's NATS credentials.
func (n *Network) AdminCreds() string { return filepath.Join(n.dir, "admin.creds") }

// Push sends the network's account JWT to the servers at url, which apply
// it at once (a new network, a revoked node).
func (n *Network) Push(ctx context.Context, url string) error {
	return n.admin.push(ctx, url, n.account)
}

// connect is the network admin's JetStream at url.
func (n *Network) connect(url string) (*nats.Conn, jetstream.JetStream, error) {
	nc, err := nats.Connect(url, nats.UserCredentials(n.AdminCreds()), nats.Name("refbus-admin "+n.Name))
	if err != nil {
		return nil, nil, fmt.Errorf("connect to nats at %s as the admin of %s: %w", network.HideCredentials(url), n.Name, err)
	}
	js, err := jetstream.New(nc)
	if err != nil {
		nc.Close()
		return nil, nil, err
	}
	return nc, js, nil
}

// registryOf is the network's registry bucket.
func registryOf(ctx context.Context, js jetstream.JetStream) (jetstream.KeyValue, error) {
	kv, err := js.KeyValue(ctx, network.RegistryBucket)
	if err != nil {
		return nil, fmt.Errorf("registry: %w (refbus-admin network create first)", err)
	}
	return kv, nil
}

// Provision makes the network's stream, mirror and buckets at url, with
// its settings' replicas (network.Provision).
func (n *Network) Provision(ctx context.Context, url string) error {
	nc, js, err := n.connect(url)
	if err != nil {
		return err
	}
	defer nc.Close()
	return network.Provision(ctx, js, n.Settings.Stream)
}

// NodeSpec is a node to add.
type NodeSpec struct {
	Name string
	Kind string
	// Organizations are the ids of the organizations it hosts.
	Organizations []string
}

// Bundle is what a node needs to join, in files its operator copies to
// the node's machine, in one directory (the node's working directory,
// /etc/refbus/NODE): node.creds (its NATS identity), a file for each of
// its secrets (bundleSecrets, mode 0600), and node.env (its name, the
// network's trust anchor and settings, and the secrets' file names, as
// environment variables). Env is node.env with those names made
// absolute, under Dir.
type Bundle struct {
	Dir string
	Env map[string]string
}

// bundleSecrets are the files of a bundle's secrets, by the variable
// that names them (VAR_FILE).
var bundleSecrets = map[string]string{
	"REFBUS_SIGNING_SEED": "signing.seed",
	"REFBUS_SEALING_KEY":  "sealing.key",
	"REFBUS_API_KEY":      "api.key",
	"REFBUS_NETWORK_KEY":  "network.key",
}

// Creds is the path of the node's NATS credentials.
func (b Bundle) Creds() string { return filepath.Join(b.Dir, "node.creds") }

// AddNode makes node spec's identity and keys, its consumer and its
// registry entry, and writes its bundle. Adding a node that has a bundle
// keeps its keys and makes sure of its consumer and entry.
func (n *Network) AddNode(ctx context.Context, url string, spec NodeSpec) (Bundle, error) {
	if !bus.ValidNode(spec.Name) {
		return Bundle{}, fmt.Errorf("node name %q: use lowercase letters, digits, _ and -, such as kz-health", spec.Name)
	}
	if len(spec.Organizations) == 0 {
		return Bundle{}, fmt.Errorf("node %s: name the organizations it hosts", spec.Name)
	}
	b := Bundle{Dir: filepath.Join(n.dir, "nodes", spec.Name)}
	entry, err := n.readBundle(&b)
	if errors.Is(err, os.ErrNotExist) {
		entry, err = n.newBundle(&b, spec)
	}
	if err != nil {
		return b, err
	}
	entry.Kind, entry.Organizations = spec.Kind, slices.Clone(spec.Organizations)
	nc, js, err := n.connect(url)
	if err != nil {
		return b, err
	}
	defer nc.Close()
	if err := network.AddConsumer(ctx, js, spec.Name, n.Settings.Consumer); err != nil {
		return b, err
	}
	kv, err := registryOf(ctx, js)
	if err != nil {
		return b, err
	}
	if old, err := n.entry(ctx, kv, spec.Name); err == nil && old.User == entry.User {
		entry.Status, entry.Since, entry.RevokedTokens = old.Status, old.Since, old.RevokedTokens
	}
	if err := network.Register(ctx, kv, n.key, entry); err != nil {
		return b, err
	}
	return b, writeJSON(filepath.Join(b.Dir, "entry.json"), entry)
}

// newBundle makes a node's keys and writes its bundle.
func (n *Network) newBundle(b *Bundle, spec NodeSpec) (network.Entry, error) {
	user, err := identity.NodeUser(n.account, spec.Name)
	if err != nil {
		return network.Entry{}, err
	}
	signing, err := nkeys.CreateAccount()
	if err != nil {
		return network.Entry{}, err
	}
	seed, _ := signing.Seed()
	signPub, _ := signing.PublicKey()
	sealing, err := ecdh.X25519().GenerateKey(rand.Reader)
	if err != nil {
		return network.Entry{}, err
	}
	apiKey := make([]byte, 32)
	if _, err := rand.Read(apiKey); err != nil {
		return network.Entry{}, err
	}
	if err := os.MkdirAll(b.Dir, 0o700); err != nil {
		return network.Entry{}, err
	}
	if err := os.WriteFile(b.Creds(), user.Creds, 0o600); err != nil {
		return network.Entry{}, err
	}
	secrets := map[string]string{
		"REFBUS_SIGNING_SEED": string(seed),
		"REFBUS_SEALING_KEY":  base64.StdEncoding.EncodeToString(sealing.Bytes()),
		"REFBUS_API_KEY":      hex.EncodeToString(apiKey),
		"REFBUS_NETWORK_KEY":  n.person,
	}
	env := map[string]string{
		"REFBUS_NODE":    spec.Name,
		"REFBUS_KIND":    spec.Kind,
		"REFBUS_NETWORK": n.Name,
		"REFBUS_ANCHOR":  n.Anchor(),
		"NATS_CREDS":     "node.creds",
	}
	for name, value := range secrets {
		if err := os.WriteFile(filepath.Join(b.Dir, bundleSecrets[name]), []byte(value+"\n"), 0o600); err != nil {
			return network.Entry{}, err
		}
		env[name+"_FILE"] = bundleSecrets[name]
	}
	if n.Settings.Language != "" {
		env["REFBUS_LANGUAGE"] = n.Settings.Language
	}
	if n.Settings.TimeZone != "" {
		env["REFBUS_TIME_ZONE"] = n.Settings.TimeZone
	}
	if n.Settings.Country != "" {
		env["REFBUS_COUNTRY"] = n.Settings.Country
	}
	if n.Settings.Coordinator != "" {
		env["REFBUS_COORDINATOR"] = n.Settings.Coordinator
	}
	if err := writeEnv(filepath.Join(b.Dir, "node.env"), env); err != nil {
		return network.Entry{}, err
	}
	b.Env = b.resolve(env)
	return network.Entry{
		Network: n.Name, Node: spec.Name, User: user.PublicKey, SigningKey: signPub,
		SealingKey: base64.StdEncoding.EncodeToString(sealing.PublicKey().Bytes()),
		Status:     network.Active, Since: time.Now().UTC(),
	}, nil
}

// readBundle reads a bundle written before.
func (n *Network) readBundle(b *Bundle) (network.Entry, error) {
	var e network.Entry
	if err := readJSON(filepath.Join(b.Dir, "entry.json"), &e); err != nil {
		return e, err
	}
	env, err := readEnv(filepath.Join(b.Dir, "node.env"))
	b.Env = b.resolve(env)
	return e, err
}

// resolve is env with the files it names (the secrets' and the NATS
// credentials'), relative to the node's working directory, under b.Dir.
func (b Bundle) resolve(env map[string]string) map[string]string {
	out := make(map[string]string, len(env))
	for k, v := range env {
		if (strings.HasSuffix(k, "_FILE") || k == "NATS_CREDS") && v != "" && !filepath.IsAbs(v) {
			v = filepath.Join(b.Dir, v)
		}
		out[k] = v
	}
	return out
}

// Bundle is node's bundle, as AddNode wrote it.
func (n *Network) Bundle(node string) (Bundle, error) {
	b := Bundle{Dir: filepath.Join(n.dir, "nodes", node)}
	_, err := n.readBundle(&b)
	if errors.Is(err, os.ErrNotExist) {
		return b, fmt.Errorf("no node %s in network %s (refbus-admin node add)", node, n.Name)
	}
	return b, err
}

// SetStatus suspends, resumes or removes node: the registry says so at
// once (the others reject its events made from now), and its NATS user is
// revoked (or no longer) at the servers at url, which close its
// connections. A removed node's consumer goes too.
func (n *Network) SetStatus(ctx context.Context, url, node string, s network.Status) error {
	nc, js, err := n.connect(url)
	if err != nil {
		return err
	}
	defer nc.Close()
	kv, err := registryOf(ctx, js)
	if err != nil {
		return err
	}
	e, err := n.entry(ctx, kv, node)
	if err != nil {
		return err
	}
	if e.Status == network.Removed {
		return fmt.Errorf("node %s was removed from %s: add it again under a new name", node, n.Name)
	}
	e.Status, e.Since = s, time.Now().UTC()
	if err := network.Register(ctx, kv, n.key, e); err != nil {
		return err
	}
	if s == network.Active {
		err = n.account.Unrevoke(e.User)
	} else {
		err = n.account.Revoke(e.User)
	}
	if err != nil {
		return err
	}
	if err := n.save(); err != nil {
		return err
	}
	if err := n.admin.writeServerConfig(); err != nil {
		return err
	}
	if err := n.Push(ctx, url); err != nil {
		return err
	}
	if s == network.Removed {
		return network.RemoveConsumer(ctx, js, node)
	}
	return nil
}

// RevokeToken revokes the bearer token with id (jti) of node's systems
// before it expires: the registry says so, and the node refuses the token
// within a moment, without a restart.
func (n *Network) RevokeToken(ctx context.Context, url, node, id string) error {
	nc, js, err := n.connect(url)
	if err != nil {
		return err
	}
	defer nc.Close()
	kv, err := registryOf(ctx, js)
	if err != nil {
		return err
	}
	e, err := n.entry(ctx, kv, node)
	if err != nil {
		return err
	}
	if slices.Contains(e.RevokedTokens, id) {
		return nil
	}
	e.RevokedTokens = append(e.RevokedTokens, id)
	return network.Register(ctx, kv, n.key, e)
}

// entry reads node's registry entry and checks its signature.
func (n *Network) entry(ctx context.Context, kv jetstream.KeyValue, node string) (network.Entry, error) {
	var e network.Entry
	v, err := kv.Get(ctx, node)
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return e, fmt.Errorf("%s: %w", node, network.ErrNotRegistered)
	}
	if err != nil {
		return e, err
	}
	return e, network.Verify(n.Anchor(), v.Value(), &e)
}

// List lists the registry's entries at url, each checked.
func (n *Network) List(ctx context.Context, url string) ([]network.Entry, error) {
	nc, js, err := n.connect(url)
	if err != nil {
		return nil, err
	}
	defer nc.Close()
	kv, err := registryOf(ctx, js)
	if err != nil {
		return nil, err
	}
	keys, err := kv.Keys(ctx)
	if errors.Is(err, jetstream.ErrNoKeysFound) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	slices.Sort(keys)
	out := make([]network.Entry, 0, len(keys))
	for _, k := range keys {
		e, err := n.entry(ctx, kv, k)
		if err != nil {
			return nil, fmt.Errorf("registry entry %s: %w", k, err)
		}
		out = append(out, e)
	}
	return out, nil
}

func writeEnv(path string, env map[string]string) error {
	keys := make([]string, 0, len(env))
	for k := range env {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	var b strings.Builder
	b.WriteString("# A refbus node's settings from its bundle (refbus-admin node add). The _FILE\n# names are relative to the node's working directory, where the bundle is\n# (/etc/refbus/NODE): each holds one secret, mode 0600.\n")
	for _, k := range keys {
		fmt.Fprintf(&b, "%s=%s\n", k, env[k])
	}
	return os.WriteFile(path, []byte(b.String()), 0o600)
}

func readEnv(path string) (map[string]string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	env := map[string]string{}
	for line := range strings.SplitSeq(string(b), "\n") {
		if k, v, ok := strings.Cut(line, "="); ok && !strings.HasPrefix(line, "#") {
			env[k] = v
		}
	}
	return env, nil
}

// APIKey is the node's API key from its bundle, that its bearer tokens
// are signed with.
func APIKey(b Bundle) ([]byte, error) {
	s, err := core.Secret(func(k string) string { return b.Env[k] }, "REFBUS_API_KEY")
	if err != nil {
		return nil, err
	}
	key, err := hex.DecodeString(s)
	if err != nil || len(key) < 32 {
		return nil, fmt.Errorf("bundle %s has no usable REFBUS_API_KEY", b.Dir)
	}
	return key, nil
}

// AddAuditor makes a read-only NATS user for auditor name (it may read
// REFERRALS and replay REFERRALS_AUDIT, nothing else) and writes its
// credentials; it returns their path and the inbox prefix it must use.
func (n *Network) AddAuditor(name string) (creds, inbox string, err error) {
	u, err := identity.AuditorUser(n.account, name)
	if err != nil {
		return "", "", err
	}
	creds = filepath.Join(n.dir, "auditors", name+".creds")
	if err := os.MkdirAll(filepath.Dir(creds), 0o700); err != nil {
		return "", "", err
	}
	return creds, u.InboxPrefix, os.WriteFile(creds, u.Creds, 0o600)
}
