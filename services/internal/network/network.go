// Package network owns what a country's network keeps on NATS besides the
// events themselves: the stream and its auditors' mirror, each node's
// durable consumer, and the buckets of the directory and of the registry
// of nodes signed by the network's key.
//
// The network's administrator makes all of them (Provision, AddConsumer;
// refbus-admin); a node only checks at start that they are there as
// expected (Open), because its NATS identity may not make or change them.
package network

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"strings"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/refbus/refbus/pkg/bus"
)

// The buckets of a network.
const (
	// DirectoryBucket holds one listing per node, written by that node:
	// the organizations it hosts and the services they offer.
	DirectoryBucket = "refbus_directory"
	// RegistryBucket holds one entry per node, written by the
	// administrator and signed with the network's key.
	RegistryBucket = "refbus_registry"
)

// InboxPrefix is where node receives its replies: the one prefix its NATS
// identity may subscribe to.
func InboxPrefix(node string) string { return "_INBOX_" + node }

// Provision makes the network's stream, its auditors' mirror and its
// buckets, or updates them to c. Only the administrator calls it.
func Provision(ctx context.Context, js jetstream.JetStream, c bus.StreamConfig) error {
	if _, err := bus.EnsureStream(ctx, js, c); err != nil {
		return err
	}
	if _, err := bus.EnsureAuditStream(ctx, js, c); err != nil {
		return err
	}
	for _, b := range []jetstream.KeyValueConfig{
		{Bucket: DirectoryBucket, Description: "node -> its organizations and the services they offer, signed by the node", History: 1},
		{Bucket: RegistryBucket, Description: "node -> kind, organizations, keys and status, signed by the network's key", History: 5},
	} {
		b.Storage = jetstream.FileStorage
		b.Replicas = max(c.Replicas, 1)
		if _, err := js.CreateOrUpdateKeyValue(ctx, b); err != nil {
			return fmt.Errorf("make bucket %s: %w", b.Bucket, err)
		}
		if err := denyRollup(ctx, js, b.Bucket); err != nil {
			return err
		}
	}
	// Networks made before issue 16 kept an index of people (person key
	// -> case) that every node read: it goes, with its history.
	if err := js.DeleteKeyValue(ctx, oldCasesBucket); err != nil && !errors.Is(err, jetstream.ErrBucketNotFound) {
		return fmt.Errorf("delete the old index of people %s: %w", oldCasesBucket, err)
	}
	return nil
}

// oldCasesBucket is the index of people that networks made before
// sealing kept; Provision deletes it.
const oldCasesBucket = "refbus_cases"

// denyRollup takes from a bucket the roll-up a KV bucket allows by
// default: a put with Nats-Rollup: all on a node's own key would wipe
// every other node's, and subject permissions cannot tell it apart.
func denyRollup(ctx context.Context, js jetstream.JetStream, bucket string) error {
	s, err := js.Stream(ctx, "KV_"+bucket)
	if err != nil {
		return fmt.Errorf("bucket %s: %w", bucket, err)
	}
	cfg := s.CachedInfo().Config
	if !cfg.AllowRollup {
		return nil
	}
	cfg.AllowRollup = false
	if _, err := js.UpdateStream(ctx, cfg); err != nil {
		return fmt.Errorf("bucket %s: deny roll-ups: %w", bucket, err)
	}
	return nil
}

// AddConsumer makes node's durable consumer, or updates it to c. Only the
// administrator calls it.
func AddConsumer(ctx context.Context, js jetstream.JetStream, node string, c bus.ConsumerConfig) error {
	_, err := bus.EnsureConsumer(ctx, js, node, c)
	return err
}

// RemoveConsumer deletes node's durable consumer: what was addressed to
// it and not yet taken stays on the stream, for auditors.
func RemoveConsumer(ctx context.Context, js jetstream.JetStream, node string) error {
	err := js.DeleteConsumer(ctx, bus.Stream, node)
	if errors.Is(err, jetstream.ErrConsumerNotFound) {
		return nil
	}
	return err
}

// Handles are what a node uses of the network.
type Handles struct {
	Stream    jetstream.Stream
	Consumer  jetstream.Consumer
	Directory jetstream.KeyValue
	Registry  jetstream.KeyValue
}

// ErrNotProvisioned: the network lacks something a node needs, or has it
// otherwise than a node expects. The message says what to run.
var ErrNotProvisioned = errors.New("the network is not set up for this node")

// Open checks that the network has what node needs, as the administrator
// made it, and returns it. It changes nothing.
func Open(ctx context.Context, js jetstream.JetStream, node string) (*Handles, error) {
	var h Handles
	var err error
	if h.Stream, err = js.Stream(ctx, bus.Stream); err != nil {
		return nil, notProvisioned(err, "stream "+bus.Stream, "refbus-admin network create")
	}
	if !bus.StreamTakes(h.Stream.CachedInfo().Config.Subjects) {
		return nil, fmt.Errorf("%w: stream %s takes %v, not the network's subjects %s", ErrNotProvisioned, bus.Stream, h.Stream.CachedInfo().Config.Subjects, bus.AllSubjects)
	}
	if h.Consumer, err = js.Consumer(ctx, bus.Stream, node); err != nil {
		return nil, notProvisioned(err, "consumer "+node, "refbus-admin node add "+node)
	}
	if got, want := h.Consumer.CachedInfo().Config.FilterSubject, bus.ConsumerSubject(node); got != want {
		return nil, fmt.Errorf("%w: consumer %s reads %q, not %q: make it again with refbus-admin node add %s", ErrNotProvisioned, node, got, want, node)
	}
	for _, b := range []struct {
		name string
		kv   *jetstream.KeyValue
	}{{DirectoryBucket, &h.Directory}, {RegistryBucket, &h.Registry}} {
		if *b.kv, err = js.KeyValue(ctx, b.name); err != nil {
			return nil, notProvisioned(err, "bucket "+b.name, "refbus-admin network create")
		}
	}
	return &h, nil
}

func notProvisioned(err error, what, fix string) error {
	if errors.Is(err, jetstream.ErrStreamNotFound) || errors.Is(err, jetstream.ErrConsumerNotFound) || errors.Is(err, jetstream.ErrBucketNotFound) {
		return fmt.Errorf("%w: %s does not exist; the network's administrator makes it (%s)", ErrNotProvisioned, what, fix)
	}
	return fmt.Errorf("check %s: %w", what, err)
}

// Setup connects to the NATS at url as the administrator (opts give the
// credentials), provisions the network with c and adds the consumers of
// nodes with cc: what refbus-admin does, for the dev stack and the bench.
func Setup(ctx context.Context, url string, c bus.StreamConfig, cc bus.ConsumerConfig, nodes []string, opts ...nats.Option) error {
	nc, err := nats.Connect(url, opts...)
	if err != nil {
		return fmt.Errorf("connect to nats at %s: %w", HideCredentials(url), err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		return err
	}
	if err := Provision(ctx, js, c); err != nil {
		return err
	}
	for _, n := range nodes {
		if err := AddConsumer(ctx, js, n, cc); err != nil {
			return err
		}
	}
	return nil
}

// HideCredentials is urls (one or a comma-separated list, as NATS_URL
// takes) with any user, password or token in them replaced by REDACTED, for
// messages and logs.
func HideCredentials(urls string) string {
	parts := strings.Split(urls, ",")
	for i, p := range parts {
		u, err := url.Parse(strings.TrimSpace(p))
		switch {
		case err != nil:
			parts[i] = "(an address that does not parse)"
		case u.User != nil:
			u.User = url.User("REDACTED")
			parts[i] = u.String()
		}
	}
	return strings.Join(parts, ",")
}
