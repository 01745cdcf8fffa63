package identity

import (
	"context"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/jwt/v2"
	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
)

// resolverSync is how often the servers of a cluster compare their
// account JWTs.
const resolverSync = 2 * time.Minute

// ConfigureServer puts an embedded server in operator mode: it trusts op,
// uses op's system account, and resolves accounts with a full resolver
// keeping their JWTs in dir, preloaded with accounts (and the system
// account). Pushed JWTs (PushAccount) are kept there too, and win over
// the preloaded ones while they are newer. The rest of o (address,
// JetStream, store) is the caller's.
func ConfigureServer(o *server.Options, op *Operator, dir string, accounts ...*Account) error {
	oc, err := jwt.DecodeOperatorClaims(op.JWT)
	if err != nil {
		return fmt.Errorf("configure server: read operator: %w", err)
	}
	res, err := server.NewDirAccResolver(dir, 0, resolverSync, server.NoDelete)
	if err != nil {
		return fmt.Errorf("configure server: account resolver in %s: %w", dir, err)
	}
	for _, a := range append([]*Account{op.System}, accounts...) {
		if err := res.Store(a.PublicKey, a.JWT); err != nil {
			return fmt.Errorf("configure server: preload account %s: %w", a.Name, err)
		}
	}
	o.TrustedOperators = []*jwt.OperatorClaims{oc}
	o.SystemAccount = op.System.PublicKey
	o.AccountResolver = res
	return nil
}

// ServerConfig is the part of a nats-server configuration file that puts
// it in operator mode, as ConfigureServer does: the operator JWT inline
// (a path to a file with it works as well), the system account, a full
// resolver keeping JWTs in dir, and accounts preloaded.
func ServerConfig(op *Operator, dir string, accounts ...*Account) []byte {
	var b strings.Builder
	fmt.Fprintf(&b, "# Operator %s: refbus identities (package identity).\n", op.Name)
	fmt.Fprintf(&b, "operator: %s\n", op.JWT)
	fmt.Fprintf(&b, "system_account: %s\n", op.System.PublicKey)
	fmt.Fprintf(&b, "resolver: {\n  type: full\n  dir: %s\n  allow_delete: false\n  interval: %q\n}\n",
		strconv.Quote(dir), resolverSync.String())
	b.WriteString("resolver_preload: {\n")
	for _, a := range append([]*Account{op.System}, accounts...) {
		fmt.Fprintf(&b, "  # %s\n  %s: %s\n", a.Name, a.PublicKey, a.JWT)
	}
	b.WriteString("}\n")
	return []byte(b.String())
}

// PushAccount sends an account JWT to the servers through sys, a
// connection of a system user (SystemUser): each server's resolver keeps
// it, and the servers apply it at once (a revoked user's connections are
// closed). It returns when a server has accepted it; in a cluster the
// others follow through the system account.
func PushAccount(ctx context.Context, sys *nats.Conn, accountJWT string) error {
	ac, err := jwt.DecodeAccountClaims(accountJWT)
	if err != nil {
		return fmt.Errorf("push account: %w", err)
	}
	m, err := sys.RequestWithContext(ctx, "$SYS.REQ.CLAIMS.UPDATE", []byte(accountJWT))
	if err != nil {
		return fmt.Errorf("push account %s: %w", ac.Name, err)
	}
	var r server.ServerAPIClaimUpdateResponse
	if err := json.Unmarshal(m.Data, &r); err != nil {
		return fmt.Errorf("push account %s: read reply: %w", ac.Name, err)
	}
	if r.Error != nil {
		return fmt.Errorf("push account %s: %s (%d)", ac.Name, r.Error.Description, r.Error.Code)
	}
	return nil
}
