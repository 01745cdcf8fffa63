package identity

import (
	"github.com/nats-io/jwt/v2"

	"github.com/refbus/refbus/pkg/bus"
	"github.com/refbus/refbus/services/internal/network"
)

// NodePermissions are the permissions of node: allow-lists, so anything
// not listed is refused.
//
// Publish:
//   - refbus.<node>.>: the events it sends, nobody else's;
//   - the JetStream API of its own durable consumer on REFERRALS: consumer
//     info, pull (MSG.NEXT), and acks; and the info of REFERRALS;
//   - $KV.refbus_directory.<node>: its own directory entry;
//   - what nats.go's KeyValue needs to read and watch refbus_directory
//     and refbus_registry (kvReadPermissions).
//
// There is no network-wide index of people: a node matches people only
// among the referrals it is party to (schemas/SEALING.md).
//
// Subscribe: its inbox prefix (InboxPrefix), and the advisory JetStream
// publishes when its durable gives up redelivering an event.
//
// What the subjects cannot confine, the admin's provisioning must:
//   - the info of REFERRALS, asked with a subjects filter, lists every
//     subject in the stream with its count (who sent what to whom, not
//     the events themselves); a node that checks its durable instead
//     (consumer info) needs no stream info;
//   - a publish to a node's own key with a Nats-Rollup: all header purges
//     the whole bucket unless the bucket's stream has AllowRollup off;
//   - the right to make the watch's consumers on a bucket's stream is
//     the right to make any consumer there (durable ones too): the
//     account's consumer limit bounds them.
func NodePermissions(node string) jwt.Permissions {
	var p jwt.Permissions
	p.Pub.Allow.Add(
		"refbus."+node+".>",
		"$JS.API.STREAM.INFO."+bus.Stream,
		"$JS.API.CONSUMER.INFO."+bus.Stream+"."+node,
		"$JS.API.CONSUMER.MSG.NEXT."+bus.Stream+"."+node,
		"$JS.ACK."+bus.Stream+"."+node+".>",
		"$KV."+network.DirectoryBucket+"."+node,
	)
	for _, b := range []string{network.DirectoryBucket, network.RegistryBucket} {
		p.Pub.Allow.Add(kvReadPermissions(b)...)
	}
	p.Sub.Allow.Add(
		InboxPrefix(node)+".>",
		"$JS.EVENT.ADVISORY.CONSUMER.MAX_DELIVERIES."+bus.Stream+"."+node,
	)
	return p
}

// kvReadPermissions are the subjects nats.go's jetstream KeyValue
// publishes to open a bucket (stream info), Get a key (direct get of the
// last message of its subject; GetRevision: by sequence) and watch it (WatchAll, Keys: an ordered
// push consumer, made and deleted through the JetStream API, with flow
// control replies).
func kvReadPermissions(bucket string) []string {
	s := "KV_" + bucket
	return []string{
		"$JS.API.STREAM.INFO." + s,
		"$JS.API.DIRECT.GET." + s,
		"$JS.API.DIRECT.GET." + s + ".>",
		"$JS.API.CONSUMER.CREATE." + s + ".>",
		"$JS.API.CONSUMER.DELETE." + s + ".*",
		"$JS.FC." + s + ".>",
	}
}

// AuditorPermissions are the permissions of an auditor who receives
// replies on inbox: it may read REFERRALS and REFERRALS_AUDIT, nothing
// else.
//
// It replays REFERRALS_AUDIT, the mirror of REFERRALS, through ordered
// consumers, and reads REFERRALS message by message. It may make no
// consumer on REFERRALS: the JetStream API cannot tell a new consumer
// from an update of an existing one, so the right to make one there is
// the right to rewrite any node's durable.
func AuditorPermissions(inbox string) jwt.Permissions {
	var p jwt.Permissions
	p.Pub.Allow.Add(
		"$JS.API.STREAM.INFO."+bus.Stream,
		"$JS.API.STREAM.MSG.GET."+bus.Stream,
		"$JS.API.STREAM.INFO."+bus.AuditStream,
		"$JS.API.STREAM.MSG.GET."+bus.AuditStream,
		"$JS.API.CONSUMER.CREATE."+bus.AuditStream+".>",
		"$JS.API.CONSUMER.DELETE."+bus.AuditStream+".*",
		"$JS.API.CONSUMER.INFO."+bus.AuditStream+".*",
		"$JS.API.CONSUMER.MSG.NEXT."+bus.AuditStream+".*",
	)
	p.Sub.Allow.Add(inbox + ".>")
	return p
}

// AdminPermissions are the permissions of a network's admin: the whole
// JetStream API (streams, consumers, buckets), every bucket's keys (the
// registry), acks and flow control for its own consumers, and the
// JetStream advisories. It publishes no events.
func AdminPermissions() jwt.Permissions {
	var p jwt.Permissions
	p.Pub.Allow.Add("$JS.API.>", "$KV.>", "$JS.ACK.>", "$JS.FC.>")
	p.Sub.Allow.Add(defaultInbox+".>", "$JS.EVENT.>")
	return p
}
