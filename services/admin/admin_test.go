package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/refbus/refbus/pkg/bus"
	"github.com/refbus/refbus/pkg/natstest"
	"github.com/refbus/refbus/pkg/pgtest"
	"github.com/refbus/refbus/pkg/poll"
	"github.com/refbus/refbus/schemas"
	"github.com/refbus/refbus/services/internal/admin"
	"github.com/refbus/refbus/services/internal/core"
	"github.com/refbus/refbus/services/internal/core/app"
	"github.com/refbus/refbus/services/internal/core/nodetest"
	"github.com/refbus/refbus/services/internal/core/web"
	"github.com/refbus/refbus/services/kinds"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

// refbusAdmin runs refbus-admin with args on the admin directory dir and
// NATS at url, and returns what it printed.
func refbusAdmin(t *testing.T, dir, url string, args ...string) string {
	t.Helper()
	var out bytes.Buffer
	cmd := command(&out)
	cmd.SetArgs(append([]string{"--dir", dir, "--url", url}, args...))
	if err := cmd.ExecuteContext(t.Context()); err != nil {
		t.Fatalf("refbus-admin %s: %v", strings.Join(args, " "), err)
	}
	return out.String()
}

// The deploy guide's walk-through: an IT officer makes the operator, starts
// nats-server in operator mode, makes a network, adds two nodes, and they
// exchange a referral, each with its own credentials; a node suspended
// while the network runs is dropped by the servers and referrals to it are
// refused, and once resumed it receives again; a node removed loses its
// consumer. No node restarts.
func TestWalkThrough(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	refbusAdmin(t, dir, "", "init", "--operator", "refbus-test")
	// The servers include server.conf; here its resolver keeps JWTs in
	// the test's directory, not /var/lib/refbus.
	a, err := admin.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	conf, err := a.ServerConfig(filepath.Join(dir, "jwt"))
	if err != nil {
		t.Fatal(err)
	}
	confPath := filepath.Join(dir, "nats.conf")
	if err := os.WriteFile(confPath, conf, 0o600); err != nil {
		t.Fatal(err)
	}
	srv := natstest.NewProcessFrom(t, confPath)
	url := srv.ClientURL()

	if _, err := nats.Connect(url); err == nil {
		t.Fatal("the server took an anonymous client")
	}
	out := refbusAdmin(t, dir, url, "network", "create", "kz", "--country", "KZ", "--coordinator", "kz-social")
	if !strings.Contains(out, "trust anchor") {
		t.Fatalf("network create says %q", out)
	}
	refbusAdmin(t, dir, url, "node", "add", "kz", "kz-social", "--kind", "social", "--org", "kz-fsc-almaly")
	refbusAdmin(t, dir, url, "node", "add", "kz", "kz-ngo-nur", "--kind", "ngo", "--org", "kz-nur")

	net, err := a.Network("kz")
	if err != nil {
		t.Fatal(err)
	}
	social := startNode(t, net, url, "kz-social", "social")
	ngo := startNode(t, net, url, "kz-ngo-nur", "ngo")

	refer := func() uuid.UUID {
		t.Helper()
		var id uuid.UUID
		poll.Until(t, 10*time.Second, func() error { // until social sees ngo's listing
			c, err := social.App().RecordConsent(t.Context(), app.NewConsent{GivenBy: "mother", ToOrg: "kz-nur", Purpose: "shelter",
				DataCategories: schemas.Categories(), ExpiresAt: time.Now().Add(time.Hour)})
			if err != nil {
				return err
			}
			r, err := social.App().CreateReferral(t.Context(), app.NewReferral{ToOrg: "kz-nur", ConsentID: c.ID, Service: "legal_help", Note: "n"})
			id = r.ID
			return err
		})
		return id
	}
	received := func(id uuid.UUID) func() error {
		return func() error {
			r, err := ngo.App().Referral(t.Context(), id)
			if err == nil && r.Status != "received" {
				err = fmt.Errorf("ngo sees %s", r.Status)
			}
			return err
		}
	}
	first := refer()
	poll.Until(t, 20*time.Second, received(first))

	refbusAdmin(t, dir, url, "node", "suspend", "kz", "kz-ngo-nur")
	if out := refbusAdmin(t, dir, url, "network", "list", "kz"); !strings.Contains(out, "kz-ngo-nur") || !strings.Contains(out, "suspended") {
		t.Fatalf("network list: %s", out)
	}
	// The servers dropped the suspended node and refuse it.
	poll.Until(t, 10*time.Second, func() error {
		if ngo.Connected() {
			return errors.New("the suspended node is still connected")
		}
		return nil
	})
	// Referring to its organization is refused, saying why; what the
	// others send each other goes on.
	poll.Until(t, 10*time.Second, func() error {
		_, err := social.App().CreateReferral(t.Context(), app.NewReferral{ToOrg: "kz-nur", Service: "legal_help", Note: "n"})
		if err == nil || !strings.Contains(err.Error(), "suspended") {
			return fmt.Errorf("a referral to a suspended node's organization: %v", err)
		}
		return nil
	})

	refbusAdmin(t, dir, url, "node", "resume", "kz", "kz-ngo-nur")
	// It reconnects by itself (no restart) and receives again.
	after := refer()
	poll.Until(t, 30*time.Second, received(after))

	// An auditor reads the mirror, and can write nothing.
	refbusAdmin(t, dir, url, "auditor", "add", "kz", "ana")
	nc, err := nats.Connect(url, nats.UserCredentials(filepath.Join(dir, "kz", "auditors", "ana.creds")), nats.CustomInboxPrefix("_INBOX_AUDIT_ana"))
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	poll.Until(t, 10*time.Second, func() error {
		s, err := js.Stream(t.Context(), bus.AuditStream)
		if err == nil && s.CachedInfo().State.Msgs < 2 {
			err = fmt.Errorf("the mirror has %d events", s.CachedInfo().State.Msgs)
		}
		return err
	})
	if _, err := js.Publish(t.Context(), "refbus.kz-social.kz-ngo-nur.referral.requested", []byte("{}")); err == nil {
		t.Fatal("an auditor published an event")
	}

	// A node removed leaves the registry's active nodes and its consumer
	// goes; the others go on.
	refbusAdmin(t, dir, url, "node", "remove", "kz", "kz-ngo-nur")
	if out := refbusAdmin(t, dir, url, "network", "list", "kz"); !strings.Contains(out, "removed") {
		t.Fatalf("network list after remove: %s", out)
	}
	anc, err := nats.Connect(url, nats.UserCredentials(net.AdminCreds()))
	if err != nil {
		t.Fatal(err)
	}
	defer anc.Close()
	ajs, err := jetstream.New(anc)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ajs.Consumer(t.Context(), bus.Stream, "kz-ngo-nur"); !errors.Is(err, jetstream.ErrConsumerNotFound) {
		t.Fatalf("the removed node's consumer: %v, want not found", err)
	}

	tok := strings.TrimSpace(refbusAdmin(t, dir, url, "token", "mint", "kz", "kz-social", "--subject", "mis-test", "--role", "caseworker"))
	if strings.Count(tok, ".") != 2 {
		t.Fatalf("token mint printed %q, not a JWT", tok)
	}
	// The node takes the token until the administrator revokes it, then
	// refuses it, saying so, without a restart.
	api := httptest.NewServer(social.Handler())
	defer api.Close()
	inbox := func() (*http.Response, error) {
		req, err := http.NewRequest("GET", api.URL+"/api/v1/inbox", nil)
		if err != nil {
			return nil, err
		}
		req.Header.Set("Authorization", "Bearer "+tok)
		res, err := http.DefaultClient.Do(req)
		if err == nil {
			res.Body.Close()
		}
		return res, err
	}
	if res, err := inbox(); err != nil || res.StatusCode != http.StatusOK {
		t.Fatalf("the minted token at its node: %v %v", res, err)
	}
	id, err := web.TokenID(tok)
	if err != nil {
		t.Fatal(err)
	}
	refbusAdmin(t, dir, url, "token", "revoke", "kz", "kz-social", id)
	poll.Until(t, 10*time.Second, func() error {
		res, err := inbox()
		if err != nil {
			return err
		}
		if res.StatusCode != http.StatusUnauthorized || !strings.Contains(res.Header.Get("WWW-Authenticate"), "revoked") {
			return fmt.Errorf("the revoked token at its node: %s, %q", res.Status, res.Header.Get("WWW-Authenticate"))
		}
		return nil
	})
}

// runningNode is a node started from its bundle.
type runningNode struct {
	*core.Node
	nc func() bool
}

// Connected reports whether the node's NATS connection is up.
func (r runningNode) Connected() bool { return r.nc() }

// startNode runs node of kind as its operator would: from its bundle's
// node.env, on a database of its own.
func startNode(t *testing.T, n *admin.Network, url, node, kind string) runningNode {
	t.Helper()
	b, err := n.Bundle(node)
	if err != nil {
		t.Fatal(err)
	}
	k := kinds.New(kind)
	env := map[string]string{"NATS_URL": url, "DATABASE_URL": nodetest.NewDB(t, k)}
	for key, v := range b.Env {
		env[key] = v
	}
	cfg := core.ConfigFrom(func(key string) string { return env[key] }, kind)
	cfg.HTTPAddr = ""
	key, err := admin.APIKey(b)
	if err != nil {
		t.Fatal(err)
	}
	cfg.Web = web.Mount(web.Config{APIKey: key, Logger: nodetest.Logger(t)})
	ctx, cancel := context.WithCancel(context.Background())
	nd, err := core.New(ctx, cfg, k, nodetest.Logger(t))
	if err != nil {
		cancel()
		t.Fatalf("start %s: %v", node, err)
	}
	done := make(chan error, 1)
	go func() { done <- nd.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		<-done
		nd.Close()
	})
	return runningNode{Node: nd, nc: nd.Connected}
}
