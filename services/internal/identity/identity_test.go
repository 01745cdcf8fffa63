package identity

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/jwt/v2"
	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"

	"github.com/refbus/refbus/pkg/bus"
	"github.com/refbus/refbus/pkg/poll"
)

func TestUsersAreWhatTheySay(t *testing.T) {
	t.Parallel()
	op, err := NewOperator("refbus-test")
	if err != nil {
		t.Fatal(err)
	}
	n, err := NewNetwork(op, "kz")
	if err != nil {
		t.Fatal(err)
	}
	for _, bad := range []string{"", "Health", "a.b", "*", ">", "-x"} {
		if _, err := NodeUser(n, bad); !errors.Is(err, ErrNotNode) {
			t.Errorf("NodeUser(%q): %v, want ErrNotNode", bad, err)
		}
	}
	exp := time.Now().Add(time.Hour)
	u, err := NodeUser(n, "health", Expires(exp))
	if err != nil {
		t.Fatal(err)
	}
	uc, err := jwt.DecodeUserClaims(u.JWT)
	if err != nil {
		t.Fatal(err)
	}
	ac, err := jwt.DecodeAccountClaims(n.JWT)
	if err != nil {
		t.Fatal(err)
	}
	switch {
	case uc.IssuerAccount != n.PublicKey || !ac.DidSign(uc):
		t.Fatalf("user issued by %s for %s, not by the network's signing key", uc.Issuer, uc.IssuerAccount)
	case uc.Expires != exp.Unix():
		t.Fatalf("expires %d, want %d", uc.Expires, exp.Unix())
	case ac.Issuer != op.PublicKey() || ac.Limits.JetStreamLimits.DiskStorage != jwt.NoLimit:
		t.Fatalf("account issued by %s with JetStream %+v", ac.Issuer, ac.Limits.JetStreamLimits)
	case !strings.Contains(string(u.Creds), u.JWT) || !strings.Contains(string(u.Creds), string(u.Seed)):
		t.Fatalf("creds file lacks the JWT or the seed:\n%s", u.Creds)
	}
	// Every user has both lists: a user without a subscribe list could
	// subscribe anywhere.
	sys, _ := SystemUser(op)
	admin, _ := AdminUser(n)
	auditor, _ := AuditorUser(n, "a1")
	for _, u := range []*User{u, sys, admin, auditor} {
		if len(u.Permissions.Pub.Allow) == 0 || len(u.Permissions.Sub.Allow) == 0 {
			t.Errorf("%s: permissions %+v", u.Name, u.Permissions)
		}
	}
}

// A suspended node's connections are closed and it cannot come back; a
// resumed one comes back on the same credentials, without a restart if
// its client keeps trying after an authorization error.
func TestSuspendAndResume(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	op, err := NewOperator("refbus-test")
	if err != nil {
		t.Fatal(err)
	}
	one, err := NewNetwork(op, "kz")
	if err != nil {
		t.Fatal(err)
	}
	srv := startServer(t, op, one)
	admin, _ := AdminUser(one)
	provision(t, ctx, js(t, connect(t, srv.ClientURL(), admin).Conn), "health", "ngo")
	sysUser, _ := SystemUser(op)
	sys := connect(t, srv.ClientURL(), sysUser)
	hu, _ := NodeUser(one, "health")
	nu, _ := NodeUser(one, "ngo")
	fast := []nats.Option{nats.ReconnectWait(20 * time.Millisecond), nats.MaxReconnects(-1), nats.ReconnectJitter(0, 0)}
	keeps := connect(t, srv.ClientURL(), hu, append(fast, nats.IgnoreAuthErrorAbort())...)
	givesUp := connect(t, srv.ClientURL(), hu, fast...)
	ngo := connect(t, srv.ClientURL(), nu)
	hj, nj := js(t, keeps.Conn), js(t, ngo.Conn)
	send := func(ctx context.Context) error {
		ctx, cancel := context.WithTimeout(ctx, time.Second)
		defer cancel()
		_, err := hj.Publish(ctx, bus.Subject("health", "ngo", "org.refbus.referral.requested.v1"), []byte(`{}`))
		return err
	}
	if err := send(ctx); err != nil {
		t.Fatal(err)
	}

	if err := one.Revoke(hu.PublicKey); err != nil {
		t.Fatal(err)
	}
	if err := PushAccount(ctx, sys.Conn, one.JWT); err != nil {
		t.Fatal(err)
	}
	poll.Until(t, 5*time.Second, func() error {
		if keeps.IsConnected() || givesUp.IsConnected() {
			return errors.New("health is still connected")
		}
		return nil
	})
	if err := send(ctx); err == nil {
		t.Fatal("a suspended node published")
	}
	if nc, err := nats.Connect(srv.ClientURL(), hu.Options()...); err == nil {
		nc.Close()
		t.Fatal("a suspended node connected")
	} else if !strings.Contains(strings.ToLower(err.Error()), "authorization violation") {
		t.Fatalf("refused, but not for authorization: %v", err)
	}
	// The default client gives up after the same authorization error twice.
	poll.Until(t, 5*time.Second, func() error {
		if !givesUp.IsClosed() {
			return fmt.Errorf("the default client is %v, not closed", givesUp.Status())
		}
		return nil
	})
	// The others carry on.
	if _, err := nj.Publish(ctx, bus.Subject("ngo", "health", "org.refbus.referral.accepted.v1"), []byte(`{}`)); err != nil {
		t.Fatal(err)
	}

	if err := one.Unrevoke(hu.PublicKey); err != nil {
		t.Fatal(err)
	}
	if err := PushAccount(ctx, sys.Conn, one.JWT); err != nil {
		t.Fatal(err)
	}
	poll.Until(t, 10*time.Second, func() error { return send(ctx) })
	nc, err := nats.Connect(srv.ClientURL(), hu.Options()...)
	if err != nil {
		t.Fatalf("a resumed node connects: %v", err)
	}
	nc.Close()
}

// A user of a network cannot push account JWTs, and the servers honour
// no account the operator did not sign, pushed or not.
func TestPushAccountRefusals(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	op, _ := NewOperator("refbus-test")
	one, _ := NewNetwork(op, "kz")
	srv := startServer(t, op, one)
	sysUser, _ := SystemUser(op)
	sys := connect(t, srv.ClientURL(), sysUser)
	other, _ := NewOperator("someone-else")
	forged, _ := NewNetwork(other, "kz")
	// The resolver keeps what the system user sends it; the server checks
	// the issuer when a user of the account connects.
	_ = PushAccount(ctx, sys.Conn, forged.JWT)
	fu, _ := AdminUser(forged)
	if nc, err := nats.Connect(srv.ClientURL(), fu.Options()...); err == nil {
		nc.Close()
		t.Fatal("a user of an account of another operator connected")
	}
	admin, _ := AdminUser(one)
	ac := connect(t, srv.ClientURL(), admin)
	_ = one.Revoke(admin.PublicKey)
	pctx, cancel := context.WithTimeout(ctx, 500*time.Millisecond)
	defer cancel()
	if err := PushAccount(pctx, ac.Conn, one.JWT); err == nil {
		t.Fatal("a network's admin pushed an account JWT")
	}
	poll.Until(t, 5*time.Second, func() error { return ac.refusedSince(0, "$SYS.REQ.CLAIMS.UPDATE") })
	if !ac.IsConnected() {
		t.Fatal("the admin was revoked by its own push")
	}
}

// ServerConfig is a configuration nats-server starts from, in operator
// mode, and takes pushed JWTs in.
func TestServerConfigFile(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	op, _ := NewOperator("refbus-test")
	one, _ := NewNetwork(op, "kz")
	dir := t.TempDir()
	conf := fmt.Sprintf("host: 127.0.0.1\nport: -1\njetstream: { store_dir: %s }\n%s",
		strconv.Quote(filepath.Join(dir, "js")), ServerConfig(op, filepath.Join(dir, "jwt"), one))
	path := filepath.Join(dir, "nats.conf")
	if err := os.WriteFile(path, []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	o, err := server.ProcessConfigFile(path)
	if err != nil {
		t.Fatalf("%v\n%s", err, conf)
	}
	o.NoSigs = true
	srv, err := server.NewServer(o)
	if err != nil {
		t.Fatal(err)
	}
	srv.Start()
	t.Cleanup(srv.Shutdown)
	if !srv.ReadyForConnections(10 * time.Second) {
		t.Fatal("server not ready")
	}
	admin, _ := AdminUser(one)
	provision(t, ctx, js(t, connect(t, srv.ClientURL(), admin).Conn), "health")
	hu, _ := NodeUser(one, "health")
	h := connect(t, srv.ClientURL(), hu)
	if _, err := js(t, h.Conn).Publish(ctx, "refbus.health.ngo.referral.requested", []byte(`{}`)); err != nil {
		t.Fatal(err)
	}
	sysUser, _ := SystemUser(op)
	if err := one.Revoke(hu.PublicKey); err != nil {
		t.Fatal(err)
	}
	if err := PushAccount(ctx, connect(t, srv.ClientURL(), sysUser).Conn, one.JWT); err != nil {
		t.Fatal(err)
	}
	poll.Until(t, 5*time.Second, func() error {
		if h.IsConnected() {
			return errors.New("health is still connected")
		}
		return nil
	})
}
