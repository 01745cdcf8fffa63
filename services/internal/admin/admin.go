// Package admin is what a network's IT officer does, kept in a directory
// of their own: the operator (the root of NATS trust), one account per
// country network with its registry key, and each node's bundle. The
// refbus-admin command and the dev stack are its two faces.
//
// The directory holds every secret of the networks it runs; keep it off
// the servers, mode 0700:
//
//	operator.json                     the operator and its system account
//	server.conf                       nats-server's operator mode (include it)
//	<network>/network.json            the account, its registry key, its settings
//	<network>/admin.creds, system.creds
//	<network>/nodes/<node>/           the node's bundle (Bundle)
package admin

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/nats-io/nats.go"

	"github.com/refbus/refbus/pkg/bus"
	"github.com/refbus/refbus/services/internal/identity"
	"github.com/refbus/refbus/services/internal/network"
)

// Admin is an administrator's directory.
type Admin struct {
	dir string
	op  *identity.Operator
}

// ErrNoOperator: the directory has no operator yet (Init makes one).
var ErrNoOperator = errors.New("no operator in the admin directory: run refbus-admin init first")

// Init makes an operator named name in dir, or opens the one there.
func Init(dir, name string) (*Admin, error) {
	a, err := Open(dir)
	if !errors.Is(err, ErrNoOperator) {
		return a, err
	}
	op, err := identity.NewOperator(name)
	if err != nil {
		return nil, err
	}
	k, err := op.Keep()
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	if err := writeJSON(filepath.Join(dir, "operator.json"), k); err != nil {
		return nil, err
	}
	a = &Admin{dir: dir, op: op}
	return a, a.writeServerConfig()
}

// Open opens the administrator's directory dir.
func Open(dir string) (*Admin, error) {
	var k identity.Kept
	if err := readJSON(filepath.Join(dir, "operator.json"), &k); errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("%s: %w", dir, ErrNoOperator)
	} else if err != nil {
		return nil, err
	}
	op, err := identity.LoadOperator(k)
	if err != nil {
		return nil, err
	}
	return &Admin{dir: dir, op: op}, nil
}

// Operator is the operator of the directory's networks.
func (a *Admin) Operator() *identity.Operator { return a.op }

// ServerConfigPath is the nats-server configuration of operator mode for
// the directory's operator and networks: include it in each server's.
func (a *Admin) ServerConfigPath() string { return filepath.Join(a.dir, "server.conf") }

// ServerConfig is nats-server's configuration of operator mode for the
// directory's operator and every network's account, with the account
// resolver keeping pushed JWTs in resolverDir.
func (a *Admin) ServerConfig(resolverDir string) ([]byte, error) {
	accounts, err := a.Accounts()
	if err != nil {
		return nil, err
	}
	return identity.ServerConfig(a.op, resolverDir, accounts...), nil
}

// ResolverDir is where server.conf has the servers keep pushed JWTs.
const ResolverDir = "/var/lib/refbus/nats/jwt"

// writeServerConfig writes server.conf, so that a server started from it
// knows every network without a push.
func (a *Admin) writeServerConfig() error {
	conf, err := a.ServerConfig(ResolverDir)
	if err != nil {
		return err
	}
	return os.WriteFile(a.ServerConfigPath(), conf, 0o600)
}

// Accounts are every network's account, for an embedded server
// (identity.ConfigureServer).
func (a *Admin) Accounts() ([]*identity.Account, error) {
	nets, err := a.Networks()
	if err != nil {
		return nil, err
	}
	out := make([]*identity.Account, len(nets))
	for i, n := range nets {
		out[i] = n.account
	}
	return out, nil
}

// Networks are the networks of the directory, by name.
func (a *Admin) Networks() ([]*Network, error) {
	entries, err := os.ReadDir(a.dir)
	if err != nil {
		return nil, err
	}
	var out []*Network
	for _, e := range entries {
		if !e.IsDir() {
			continue
		}
		if _, err := os.Stat(filepath.Join(a.dir, e.Name(), "network.json")); err != nil {
			continue
		}
		n, err := a.Network(e.Name())
		if err != nil {
			return nil, err
		}
		out = append(out, n)
	}
	return out, nil
}

// push sends an account JWT to the servers at url through the operator's
// system account, for them to apply at once.
func (a *Admin) push(ctx context.Context, url string, acc *identity.Account) error {
	sys, err := identity.SystemUser(a.op)
	if err != nil {
		return err
	}
	nc, err := nats.Connect(url, sys.Options()...)
	if err != nil {
		return fmt.Errorf("connect to nats at %s as the system user: %w", network.HideCredentials(url), err)
	}
	defer nc.Close()
	return identity.PushAccount(ctx, nc, acc.JWT)
}

// Settings are what follows a network rather than a node.
type Settings struct {
	// Country is the ISO 3166 code (KZ, KG): it chooses the national id.
	Country string `json:"country"`
	// Coordinator is the node that sees every overdue referral.
	Coordinator string `json:"coordinator,omitempty"`
	// Language is the default language of its caseworkers (ru, kk, ky, en).
	Language string `json:"language,omitempty"`
	// TimeZone is where its deadlines are read (Asia/Almaty).
	TimeZone string `json:"time_zone,omitempty"`
	// Stream sets its stream's replicas, retention and dedupe window.
	Stream bus.StreamConfig `json:"stream"`
	// Consumer sets its nodes' consumers' redelivery.
	Consumer bus.ConsumerConfig `json:"consumer"`
}

func writeJSON(path string, v any) error {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return err
	}
	return os.WriteFile(path, append(b, '\n'), 0o600)
}

func readJSON(path string, v any) error {
	b, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	if err := json.Unmarshal(b, v); err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	return nil
}
