// Package deploy holds the deployment configuration; its test checks that
// the NATS configs load and that the permissions they grant are the ones
// the design promises.
package deploy

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/refbus/refbus/pkg/bus"
)

func setPasswords(t *testing.T) {
	for _, u := range []string{"HEALTH", "EDUCATION", "SOCIAL", "NGO", "AUDITOR"} {
		t.Setenv(u+"_PASSWORD", "test-"+u)
	}
}

// Every shipped config loads with nats-server's own parser (with TLS
// files made for the test where a config names them).
func TestConfigsLoad(t *testing.T) {
	setPasswords(t)
	confs := copyShipped(t)
	for _, f := range []string{"single.conf", "cluster-1.conf", "cluster-2.conf", "cluster-3.conf"} {
		confs.load(t, f)
	}
}

// An agency may publish only the events it sends; the auditor may read but
// not publish.
func TestAgencyPermissions(t *testing.T) {
	setPasswords(t)
	opts, err := server.ProcessConfigFile("nats/single.conf")
	if err != nil {
		t.Fatal(err)
	}
	opts.StoreDir, opts.Port, opts.HTTPPort, opts.NoSigs = t.TempDir(), -1, 0, true
	srv, err := server.NewServer(opts)
	if err != nil {
		t.Fatal(err)
	}
	srv.Start()
	t.Cleanup(srv.Shutdown)
	if !srv.ReadyForConnections(10 * time.Second) {
		t.Fatal("server not ready")
	}
	connect := func(user string) (*nats.Conn, chan error) {
		errs := make(chan error, 10)
		nc, err := nats.Connect(srv.ClientURL(), nats.UserInfo(user, "test-"+map[string]string{
			"health": "HEALTH", "auditor": "AUDITOR"}[user]),
			nats.ErrorHandler(func(_ *nats.Conn, _ *nats.Subscription, err error) { errs <- err }))
		if err != nil {
			t.Fatalf("connect as %s: %v", user, err)
		}
		t.Cleanup(nc.Close)
		return nc, errs
	}
	ctx := context.Background()
	health, _ := connect("health")
	js, err := jetstream.New(health)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := bus.EnsureStream(ctx, js, bus.StreamConfig{}); err != nil {
		t.Fatalf("health creates the stream: %v", err)
	}
	if _, err := js.Publish(ctx, bus.Subject("health", "ngo", "org.refbus.referral.requested.v1"), []byte("{}")); err != nil {
		t.Fatalf("health publishes its own event: %v", err)
	}
	short, cancel := context.WithTimeout(ctx, time.Second)
	defer cancel()
	if _, err := js.Publish(short, bus.Subject("ngo", "health", "org.refbus.referral.accepted.v1"), []byte("{}")); err == nil {
		t.Fatal("health published an event as ngo")
	}

	auditor, errs := connect("auditor")
	if err := auditor.Publish(bus.Subject("health", "ngo", "org.refbus.referral.requested.v1"), []byte("{}")); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-errs:
		if !errors.Is(err, nats.ErrPermissionViolation) && !isPermission(err) {
			t.Fatalf("auditor publish: %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the auditor published an event without a permission error")
	}
	ajs, err := jetstream.New(auditor)
	if err != nil {
		t.Fatal(err)
	}
	cons, err := ajs.OrderedConsumer(ctx, bus.Stream, jetstream.OrderedConsumerConfig{})
	if err != nil {
		t.Fatalf("auditor reads the stream: %v", err)
	}
	msg, err := cons.Next(jetstream.FetchMaxWait(5 * time.Second))
	if err != nil || msg.Subject() != bus.Subject("health", "ngo", "org.refbus.referral.requested.v1") {
		t.Fatalf("auditor read %v, %v", msg, err)
	}

	// The audit mirror, as audit-mirror.json makes it: the auditor reads
	// it, and no one may delete from it or purge it.
	b, err := os.ReadFile("nats/audit-mirror.json")
	if err != nil {
		t.Fatal(err)
	}
	var mcfg jetstream.StreamConfig
	if err := json.Unmarshal(b, &mcfg); err != nil {
		t.Fatalf("audit-mirror.json: %v", err)
	}
	if mcfg.Name != bus.AuditStream || mcfg.Mirror == nil || mcfg.Mirror.Name != bus.Stream || !mcfg.DenyDelete || !mcfg.DenyPurge {
		t.Fatalf("audit-mirror.json: %+v", mcfg)
	}
	mirror, err := js.CreateStream(ctx, mcfg)
	if err != nil {
		t.Fatalf("create the audit mirror: %v", err)
	}
	mcons, err := ajs.OrderedConsumer(ctx, bus.AuditStream, jetstream.OrderedConsumerConfig{})
	if err != nil {
		t.Fatalf("auditor reads the mirror: %v", err)
	}
	if msg, err := mcons.Next(jetstream.FetchMaxWait(5 * time.Second)); err != nil || msg.Subject() != bus.Subject("health", "ngo", "org.refbus.referral.requested.v1") {
		t.Fatalf("auditor read from the mirror %v, %v", msg, err)
	}
	if err := mirror.Purge(ctx); err == nil {
		t.Error("health purged the audit mirror")
	}
	if err := mirror.DeleteMsg(ctx, 1); err == nil {
		t.Error("health deleted from the audit mirror")
	}
}

func isPermission(err error) bool {
	return strings.Contains(strings.ToLower(err.Error()), "permissions violation")
}
