// Package bus names the JetStream stream, subjects and consumers that carry
// events between the nodes of a network.
//
// Subjects are refbus.<from>.<to>.<event>, where <from> and <to> are node
// names and <event> is the event type without its org.refbus. prefix and
// version (referral.requested, receipt). Each node reads refbus.*.<node>.>
// through its own durable consumer.
package bus

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// Stream is the name of the stream that keeps every event of the network.
const Stream = "REFERRALS"

const (
	subjectRoot = "refbus"
	typePrefix  = "org.refbus."
	sourceRoot  = "/agencies/"
	maxNodeLen  = 64
)

// ValidNode reports whether name can name a node: one NATS subject token
// of lowercase letters, digits, '_' and '-', starting with a letter or a
// digit, at most 64 bytes.
func ValidNode(name string) bool {
	if name == "" || len(name) > maxNodeLen {
		return false
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		switch {
		case c >= 'a' && c <= 'z', c >= '0' && c <= '9':
		case (c == '_' || c == '-') && i > 0:
		default:
			return false
		}
	}
	return true
}

// Source is the CloudEvents source of a node: /agencies/<node>.
func Source(node string) string { return sourceRoot + node }

// NodeOf returns the node a CloudEvents source names, if the source is
// /agencies/<node> with a valid node name.
func NodeOf(source string) (string, bool) {
	n, ok := strings.CutPrefix(source, sourceRoot)
	return n, ok && ValidNode(n)
}

// Subject is the NATS subject of an event of eventType from one node to
// another.
func Subject(from, to, eventType string) string {
	return subjectRoot + "." + from + "." + to + "." + eventName(eventType)
}

// eventName turns org.refbus.referral.requested.v1 into referral.requested.
func eventName(eventType string) string {
	n := strings.TrimPrefix(eventType, typePrefix)
	if i := strings.LastIndex(n, ".v"); i > 0 {
		n = n[:i]
	}
	return n
}

// ParseSubject splits a subject into its sending and receiving node.
func ParseSubject(subject string) (from, to string, err error) {
	parts := strings.SplitN(subject, ".", 4)
	if len(parts) < 4 || parts[0] != subjectRoot {
		return "", "", fmt.Errorf("subject %q is not refbus.<from>.<to>.<event>", subject)
	}
	return parts[1], parts[2], nil
}

// AllSubjects are the subjects of every event of a network.
const AllSubjects = subjectRoot + ".>"

// StreamTakes reports whether a stream of subjects keeps every event of
// the network.
func StreamTakes(subjects []string) bool {
	return slices.Contains(subjects, AllSubjects)
}

// ConsumerSubject is what node's durable consumer reads: every event
// addressed to it.
func ConsumerSubject(node string) string { return subjectRoot + ".*." + node + ".>" }

// StreamConfig sets what differs between deployments.
type StreamConfig struct {
	// MaxAge is the legal retention period; 0 keeps events for 10 years.
	MaxAge time.Duration
	// Replicas is 1 on one machine and 3 on a cluster; 0 means 1.
	Replicas int
	// Duplicates is JetStream's dedupe window; 0 means one hour.
	Duplicates time.Duration
}

// EnsureStream creates or updates the REFERRALS stream.
func EnsureStream(ctx context.Context, js jetstream.JetStream, c StreamConfig) (jetstream.Stream, error) {
	if c.MaxAge == 0 {
		c.MaxAge = 10 * 365 * 24 * time.Hour
	}
	if c.Replicas == 0 {
		c.Replicas = 1
	}
	if c.Duplicates == 0 {
		c.Duplicates = time.Hour
	}
	s, err := js.CreateOrUpdateStream(ctx, jetstream.StreamConfig{
		Name:        Stream,
		Description: "events between the nodes of the network",
		Subjects:    []string{AllSubjects},
		Storage:     jetstream.FileStorage,
		Retention:   jetstream.LimitsPolicy,
		MaxAge:      c.MaxAge,
		Replicas:    c.Replicas,
		Duplicates:  c.Duplicates,
		DenyDelete:  true,
		DenyPurge:   true,
	})
	if err != nil {
		return nil, fmt.Errorf("ensure stream %s: %w", Stream, err)
	}
	return s, nil
}

// AuditStream is the name of the auditors' mirror of REFERRALS.
const AuditStream = "REFERRALS_AUDIT"

// EnsureAuditStream creates or updates AuditStream: a JetStream mirror of
// REFERRALS that no one may delete from or purge, kept for c.MaxAge (0:
// 10 years), that auditors replay and verify across the whole retention
// even if the stream the nodes use is ever purged or recreated. A
// mirror takes no publishes: it only copies REFERRALS, in order.
func EnsureAuditStream(ctx context.Context, js jetstream.JetStream, c StreamConfig) (jetstream.Stream, error) {
	if c.MaxAge == 0 {
		c.MaxAge = 10 * 365 * 24 * time.Hour
	}
	if c.Replicas == 0 {
		c.Replicas = 1
	}
	s, err := js.CreateOrUpdateStream(ctx, jetstream.StreamConfig{
		Name:        AuditStream,
		Description: "auditors' mirror of " + Stream + ": no deletes, no purges",
		Mirror:      &jetstream.StreamSource{Name: Stream},
		Storage:     jetstream.FileStorage,
		Retention:   jetstream.LimitsPolicy,
		MaxAge:      c.MaxAge,
		Replicas:    c.Replicas,
		DenyDelete:  true,
		DenyPurge:   true,
	})
	if err != nil {
		return nil, fmt.Errorf("ensure stream %s: %w", AuditStream, err)
	}
	return s, nil
}

// ConsumerConfig sets the redelivery policy of a node's consumer.
type ConsumerConfig struct {
	// AckWait is how long JetStream waits for the acknowledgement of a
	// delivered event before it delivers it again: the time a consumer
	// that died gets to come back. 0 means 30s. It must cover a batch's
	// wait in the client's buffer and its transaction, or JetStream
	// delivers events again that are still being applied.
	AckWait time.Duration
	// BackOff are the waits before each redelivery of an event the
	// consumer could not apply yet (it naks them with these delays); the
	// last one repeats. nil uses 1s, 5s, 30s, 2m, 10m.
	BackOff []time.Duration
	// MaxDeliver bounds deliveries before an event goes to the dead
	// letters; 0 means 20.
	MaxDeliver int
}

// DefaultBackOff is the redelivery schedule of a consumer.
var DefaultBackOff = []time.Duration{time.Second, 5 * time.Second, 30 * time.Second, 2 * time.Minute, 10 * time.Minute}

// EnsureConsumer creates or updates the durable consumer of node.
func EnsureConsumer(ctx context.Context, js jetstream.JetStream, node string, c ConsumerConfig) (jetstream.Consumer, error) {
	if !ValidNode(node) {
		return nil, fmt.Errorf("ensure consumer: %q is not a node name", node)
	}
	if c.AckWait == 0 {
		c.AckWait = 30 * time.Second
	}
	if c.MaxDeliver == 0 {
		c.MaxDeliver = 20
	}
	// No server-side BackOff: it would replace AckWait with its first step.
	// The consumer naks what it cannot apply yet with its own delays.
	cons, err := js.CreateOrUpdateConsumer(ctx, Stream, jetstream.ConsumerConfig{
		Durable:       node,
		Description:   "events addressed to " + node,
		FilterSubject: ConsumerSubject(node),
		AckPolicy:     jetstream.AckExplicitPolicy,
		DeliverPolicy: jetstream.DeliverAllPolicy,
		AckWait:       c.AckWait,
		MaxDeliver:    c.MaxDeliver,
		MaxAckPending: 20000,
	})
	if err != nil {
		return nil, fmt.Errorf("ensure consumer %s: %w", node, err)
	}
	return cons, nil
}
