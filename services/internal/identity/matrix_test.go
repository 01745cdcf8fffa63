package identity

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/jwt/v2"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/refbus/refbus/pkg/bus"
	"github.com/refbus/refbus/pkg/poll"
	"github.com/refbus/refbus/services/internal/network"
)

// world is one server in operator mode with two networks: health, ngo
// and education in network one, with an auditor and the admin; ngo again
// (the same name) in network two.
type world struct {
	url                            string
	one, two                       *Account
	admin, health, ngo, auditor    *conn
	education, ngo2, admin2        *conn
	adminJS, healthJS, ngoJS       jetstream.JetStream
	auditorJS, educationJS, ngo2JS jetstream.JetStream
	// toNgo and toHealth are the stream sequences of an event education
	// sent to ngo and one it sent to health.
	toNgo, toHealth uint64
	// wait bounds how long a refusal takes to be reported.
	wait time.Duration
}

// newWorld starts the world. widen, if set, changes the permissions of
// health and of the auditor: the red run widens them to see every attack
// succeed.
func newWorld(t *testing.T, widen func(*jwt.Permissions)) *world {
	t.Helper()
	op, err := NewOperator("refbus-test")
	if err != nil {
		t.Fatal(err)
	}
	one, err := NewNetwork(op, "kz")
	if err != nil {
		t.Fatal(err)
	}
	two, err := NewNetwork(op, "kg")
	if err != nil {
		t.Fatal(err)
	}
	srv := startServer(t, op, one, two)
	w := &world{url: srv.ClientURL(), one: one, two: two, wait: 5 * time.Second}
	user := func(u *User, err error) *User {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
		return u
	}
	widened := func(name, inbox string, p jwt.Permissions) *User {
		if widen != nil {
			widen(&p)
		}
		return user(newUser(one, name, inbox, p))
	}
	w.admin = connect(t, w.url, user(AdminUser(one)))
	w.admin2 = connect(t, w.url, user(AdminUser(two)))
	w.health = connect(t, w.url, widened("health", InboxPrefix("health"), NodePermissions("health")))
	w.ngo = connect(t, w.url, user(NodeUser(one, "ngo")))
	w.education = connect(t, w.url, user(NodeUser(one, "education")))
	w.auditor = connect(t, w.url, widened("audit-a1", "_INBOX_AUDIT_a1", AuditorPermissions("_INBOX_AUDIT_a1")))
	w.ngo2 = connect(t, w.url, user(NodeUser(two, "ngo")))
	w.adminJS, w.healthJS, w.ngoJS = js(t, w.admin.Conn), js(t, w.health.Conn), js(t, w.ngo.Conn)
	w.auditorJS, w.educationJS, w.ngo2JS = js(t, w.auditor.Conn), js(t, w.education.Conn), js(t, w.ngo2.Conn)
	w.seed(t)
	return w
}

// seed provisions both networks as their admins and puts in the events
// and entries the cases read. It can run again after an attack that
// succeeded.
func (w *world) seed(t *testing.T) {
	t.Helper()
	ctx := context.Background()
	provision(t, ctx, w.adminJS, "health", "ngo", "education")
	provision(t, ctx, js(t, w.admin2.Conn), "ngo")
	w.toNgo = publish(t, w.educationJS, bus.Subject("education", "ngo", "org.refbus.referral.requested.v1"))
	w.toHealth = publish(t, w.educationJS, bus.Subject("education", "health", "org.refbus.referral.requested.v1"))
	put(t, w.ngoJS, network.DirectoryBucket, "ngo", `{"agency":"ngo"}`)
	put(t, w.adminJS, network.RegistryBucket, "health", `{"kind":"health"}`)
}

func publish(t testing.TB, j jetstream.JetStream, subject string) uint64 {
	t.Helper()
	ack, err := j.Publish(context.Background(), subject, []byte(`{"family":"private"}`))
	if err != nil {
		t.Fatalf("publish %s: %v", subject, err)
	}
	return ack.Sequence
}

func put(t testing.TB, j jetstream.JetStream, bucket, key, value string) {
	t.Helper()
	if err := putErr(context.Background(), j, bucket, key, value); err != nil {
		t.Fatal(err)
	}
}

func putErr(ctx context.Context, j jetstream.JetStream, bucket, key, value string) error {
	kv, err := j.KeyValue(ctx, bucket)
	if err == nil {
		_, err = kv.Put(ctx, key, []byte(value))
	}
	if err != nil {
		return fmt.Errorf("put %s in %s: %w", key, bucket, err)
	}
	return nil
}

// refused runs act as c, and returns nil when the server refused it: it
// reported a permissions violation for subject (or a subject beginning
// with it) within w.wait, and act did not succeed.
func (w *world) refused(ctx context.Context, c *conn, subject string, act func(context.Context) error) error {
	n := len(c.violations())
	actx, cancel := context.WithTimeout(ctx, w.wait)
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- act(actx) }()
	finished := false
	err := within(w.wait, func() error {
		if !finished {
			select {
			case err := <-done:
				if err == nil {
					return errAllowed
				}
				finished = true
			default:
			}
		}
		return c.refusedSince(n, subject)
	})
	if err != nil {
		return err
	}
	cancel()
	if !finished {
		if err := <-done; err == nil {
			return fmt.Errorf("%s was reported refused, but the action succeeded", subject)
		}
	}
	return nil
}

// errAllowed stops within: the action succeeded.
var errAllowed = errors.New("the server allowed it")

// cannotSee subscribes as c to subject, runs trigger (which makes traffic
// there), and returns nil when the server refused the subscription and
// nothing came on it.
func (w *world) cannotSee(ctx context.Context, c *conn, subject string, trigger func(context.Context) error) error {
	n := len(c.violations())
	ch := make(chan *nats.Msg, 64)
	sub, err := c.ChanSubscribe(subject, ch)
	if err != nil {
		return fmt.Errorf("subscribe: %w", err)
	}
	defer func() { _ = sub.Unsubscribe() }()
	if err := c.Flush(); err != nil {
		return err
	}
	if trigger != nil {
		if err := trigger(ctx); err != nil {
			return fmt.Errorf("make traffic on %s: %w", subject, err)
		}
	}
	if err := within(w.wait, func() error { return c.refusedSince(n, subject) }); err != nil {
		return err
	}
	// The traffic was delivered before trigger returned: a subscription
	// the server kept would have it by now, or very soon.
	return always(250*time.Millisecond, func() error {
		if len(ch) > 0 {
			m := <-ch
			return fmt.Errorf("saw %s on %s", m.Subject, subject)
		}
		return nil
	})
}

// within polls cond until it returns nil, or returns its last error after
// d. errAllowed ends it at once.
func within(d time.Duration, cond func() error) error {
	deadline := time.Now().Add(d)
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for {
		err := cond()
		if err == nil || errors.Is(err, errAllowed) || time.Now().After(deadline) {
			return err
		}
		<-tick.C
	}
}

// always polls cond for d and returns its first error.
func always(d time.Duration, cond func() error) error {
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for deadline := time.Now().Add(d); time.Now().Before(deadline); <-tick.C {
		if err := cond(); err != nil {
			return err
		}
	}
	return cond()
}

// attack is something a node or an auditor must not be able to do.
type attack struct {
	name string
	// perm is true when the permissions close it: it must succeed in the
	// red run, where they are widened.
	perm bool
	try  func(context.Context, *world) error
}

// intact checks, as the admin, that ngo's durable and the streams are as
// provisioned.
func (w *world) intact(ctx context.Context) error {
	c, err := w.adminJS.Consumer(ctx, bus.Stream, "ngo")
	if err != nil {
		return fmt.Errorf("ngo's durable: %w", err)
	}
	if f := c.CachedInfo().Config.FilterSubject; f != "refbus.*.ngo.>" {
		return fmt.Errorf("ngo's durable now filters %s", f)
	}
	for _, name := range []string{bus.Stream, bus.AuditStream} {
		s, err := w.adminJS.Stream(ctx, name)
		if err != nil {
			return fmt.Errorf("stream %s: %w", name, err)
		}
		if s.CachedInfo().Config.MaxMsgs != -1 || name == bus.Stream && s.CachedInfo().State.Msgs == 0 {
			return fmt.Errorf("stream %s: max_msgs %d, %d messages", name, s.CachedInfo().Config.MaxMsgs, s.CachedInfo().State.Msgs)
		}
	}
	return nil
}

// then runs check after an attack that was refused.
func then(err error, check func() error) error {
	if err != nil {
		return err
	}
	return check()
}

var attacks = []attack{
	{"health makes a consumer of its own on refbus.*.ngo.> (reads ngo's events)", true, func(ctx context.Context, w *world) error {
		return w.refused(ctx, w.health, "$JS.API.CONSUMER.CREATE."+bus.Stream, func(ctx context.Context) error {
			c, err := w.healthJS.OrderedConsumer(ctx, bus.Stream, jetstream.OrderedConsumerConfig{FilterSubjects: []string{"refbus.*.ngo.>"}})
			if err != nil {
				return err
			}
			_, err = c.Next(jetstream.FetchContext(ctx))
			return err
		})
	}},
	{"health reads an event addressed to ngo by message get", true, func(ctx context.Context, w *world) error {
		return w.refused(ctx, w.health, "$JS.API.STREAM.MSG.GET."+bus.Stream, func(ctx context.Context) error {
			s, err := w.healthJS.Stream(ctx, bus.Stream)
			if err != nil {
				return err
			}
			_, err = s.GetMsg(ctx, w.toNgo)
			return err
		})
	}},
	{"health reads an event addressed to ngo by direct get", true, func(ctx context.Context, w *world) error {
		return w.refused(ctx, w.health, "$JS.API.DIRECT.GET."+bus.Stream, func(ctx context.Context) error {
			_, err := w.health.RequestWithContext(ctx, "$JS.API.DIRECT.GET."+bus.Stream, []byte(`{"seq":`+strconv.FormatUint(w.toNgo, 10)+`}`))
			return err
		})
	}},
	{"health pulls from ngo's durable", true, func(ctx context.Context, w *world) error {
		return w.refused(ctx, w.health, "$JS.API.CONSUMER.MSG.NEXT."+bus.Stream+".ngo", func(ctx context.Context) error {
			m, err := w.health.RequestWithContext(ctx, "$JS.API.CONSUMER.MSG.NEXT."+bus.Stream+".ngo", []byte(`{"batch":1,"no_wait":true}`))
			if err != nil {
				return err
			}
			if len(m.Data) == 0 {
				return fmt.Errorf("no message: %s", m.Header.Get("Description"))
			}
			return nil
		})
	}},
	{"health opens ngo's durable", true, func(ctx context.Context, w *world) error {
		return w.refused(ctx, w.health, "$JS.API.CONSUMER.INFO."+bus.Stream+".ngo", func(ctx context.Context) error {
			_, err := w.healthJS.Consumer(ctx, bus.Stream, "ngo")
			return err
		})
	}},
	{"health acks on ngo's durable", true, func(ctx context.Context, w *world) error {
		subject := fmt.Sprintf("$JS.ACK.%s.ngo.1.%d.1.0.0", bus.Stream, w.toNgo)
		return w.refused(ctx, w.health, "$JS.ACK."+bus.Stream+".ngo", func(ctx context.Context) error {
			_, err := w.health.RequestWithContext(ctx, subject, []byte("+ACK"))
			return err
		})
	}},
	{"health sees replies on _INBOX.>", true, func(ctx context.Context, w *world) error {
		return w.cannotSee(ctx, w.health, "_INBOX.>", func(ctx context.Context) error {
			_, err := w.adminJS.Stream(ctx, bus.Stream)
			return err
		})
	}},
	{"health sees replies on ngo's inbox prefix", true, func(ctx context.Context, w *world) error {
		return w.cannotSee(ctx, w.health, InboxPrefix("ngo")+".>", func(ctx context.Context) error {
			_, err := w.ngoJS.KeyValue(ctx, network.DirectoryBucket)
			return err
		})
	}},
	{"health watches ngo's dead-letter advisories", true, func(ctx context.Context, w *world) error {
		return w.cannotSee(ctx, w.health, "$JS.EVENT.ADVISORY.CONSUMER.MAX_DELIVERIES."+bus.Stream+".ngo", nil)
	}},
	{"health deletes REFERRALS", true, func(ctx context.Context, w *world) error {
		return then(w.refused(ctx, w.health, "$JS.API.STREAM.DELETE."+bus.Stream, func(ctx context.Context) error {
			return w.healthJS.DeleteStream(ctx, bus.Stream)
		}), func() error { return w.intact(ctx) })
	}},
	{"health deletes REFERRALS_AUDIT", true, func(ctx context.Context, w *world) error {
		return then(w.refused(ctx, w.health, "$JS.API.STREAM.DELETE."+bus.AuditStream, func(ctx context.Context) error {
			return w.healthJS.DeleteStream(ctx, bus.AuditStream)
		}), func() error { return w.intact(ctx) })
	}},
	{"health sets max_msgs on REFERRALS", true, func(ctx context.Context, w *world) error {
		return then(w.refused(ctx, w.health, "$JS.API.STREAM.UPDATE."+bus.Stream, func(ctx context.Context) error {
			s, err := w.healthJS.Stream(ctx, bus.Stream)
			if err != nil {
				return err
			}
			cfg := s.CachedInfo().Config
			cfg.MaxMsgs = 1
			_, err = w.healthJS.UpdateStream(ctx, cfg)
			return err
		}), func() error { return w.intact(ctx) })
	}},
	{"health purges REFERRALS", true, func(ctx context.Context, w *world) error {
		return w.refused(ctx, w.health, "$JS.API.STREAM.PURGE."+bus.Stream, func(ctx context.Context) error {
			s, err := w.healthJS.Stream(ctx, bus.Stream)
			if err != nil {
				return err
			}
			return s.Purge(ctx)
		})
	}},
	{"health mirrors REFERRALS into a stream of its own", true, func(ctx context.Context, w *world) error {
		return w.refused(ctx, w.health, "$JS.API.STREAM.CREATE.SPY", func(ctx context.Context) error {
			_, err := w.healthJS.CreateStream(ctx, jetstream.StreamConfig{Name: "SPY", Mirror: &jetstream.StreamSource{Name: bus.Stream}})
			return err
		})
	}},
	{"health re-points ngo's durable", true, func(ctx context.Context, w *world) error {
		return then(w.refused(ctx, w.health, "$JS.API.CONSUMER.CREATE."+bus.Stream+".ngo", func(ctx context.Context) error {
			_, err := w.healthJS.UpdateConsumer(ctx, bus.Stream, jetstream.ConsumerConfig{
				Durable: "ngo", FilterSubject: "refbus.*.health.>", AckPolicy: jetstream.AckExplicitPolicy, AckWait: time.Second, MaxDeliver: 2, MaxAckPending: 20000,
			})
			return err
		}), func() error { return w.intact(ctx) })
	}},
	{"health deletes ngo's durable", true, func(ctx context.Context, w *world) error {
		return then(w.refused(ctx, w.health, "$JS.API.CONSUMER.DELETE."+bus.Stream+".ngo", func(ctx context.Context) error {
			return w.healthJS.DeleteConsumer(ctx, bus.Stream, "ngo")
		}), func() error { return w.intact(ctx) })
	}},
	{"health lists the consumers of REFERRALS", true, func(ctx context.Context, w *world) error {
		return w.refused(ctx, w.health, "$JS.API.CONSUMER.NAMES."+bus.Stream, func(ctx context.Context) error {
			s, err := w.healthJS.Stream(ctx, bus.Stream)
			if err != nil {
				return err
			}
			names := s.ConsumerNames(ctx)
			for range names.Name() {
			}
			return names.Err()
		})
	}},
	{"health rewrites the directory's stream", true, func(ctx context.Context, w *world) error {
		return w.refused(ctx, w.health, "$JS.API.STREAM.UPDATE.KV_"+network.DirectoryBucket, func(ctx context.Context) error {
			s, err := w.healthJS.Stream(ctx, "KV_"+network.DirectoryBucket)
			if err != nil {
				return err
			}
			cfg := s.CachedInfo().Config
			cfg.MaxMsgsPerSubject = 100
			_, err = w.healthJS.UpdateStream(ctx, cfg)
			return err
		})
	}},
	{"health purges the directory's stream", true, func(ctx context.Context, w *world) error {
		return w.refused(ctx, w.health, "$JS.API.STREAM.PURGE.KV_"+network.DirectoryBucket, func(ctx context.Context) error {
			s, err := w.healthJS.Stream(ctx, "KV_"+network.DirectoryBucket)
			if err != nil {
				return err
			}
			return s.Purge(ctx)
		})
	}},
	{"health puts ngo's directory entry (replaces ngo's key)", true, func(ctx context.Context, w *world) error {
		return then(w.refused(ctx, w.health, "$KV."+network.DirectoryBucket+".ngo", func(ctx context.Context) error {
			kv, err := w.healthJS.KeyValue(ctx, network.DirectoryBucket)
			if err != nil {
				return err
			}
			_, err = kv.Put(ctx, "ngo", []byte(`{"agency":"ngo","key":"health's"}`))
			return err
		}), func() error { return w.ngoListed(ctx) })
	}},
	{"health deletes ngo's directory entry", true, func(ctx context.Context, w *world) error {
		return then(w.refused(ctx, w.health, "$KV."+network.DirectoryBucket+".ngo", func(ctx context.Context) error {
			kv, err := w.healthJS.KeyValue(ctx, network.DirectoryBucket)
			if err != nil {
				return err
			}
			return kv.Delete(ctx, "ngo")
		}), func() error { return w.ngoListed(ctx) })
	}},
	{"health writes the registry", true, func(ctx context.Context, w *world) error {
		return w.refused(ctx, w.health, "$KV."+network.RegistryBucket+".health", func(ctx context.Context) error {
			kv, err := w.healthJS.KeyValue(ctx, network.RegistryBucket)
			if err != nil {
				return err
			}
			_, err = kv.Put(ctx, "health", []byte(`{"status":"active","key":"new"}`))
			return err
		})
	}},
	{"health publishes as ngo", true, func(ctx context.Context, w *world) error {
		subject := bus.Subject("ngo", "health", "org.refbus.referral.requested.v1")
		return w.refused(ctx, w.health, subject, func(ctx context.Context) error {
			_, err := w.healthJS.Publish(ctx, subject, []byte(`{}`))
			return err
		})
	}},
	{"health makes a bucket", true, func(ctx context.Context, w *world) error {
		return w.refused(ctx, w.health, "$JS.API.STREAM.CREATE.KV_spy", func(ctx context.Context) error {
			_, err := w.healthJS.CreateStream(ctx, jetstream.StreamConfig{Name: "KV_spy", Subjects: []string{"$KV.spy.>"}, MaxMsgsPerSubject: 1})
			return err
		})
	}},
	{"health wipes the directory with a Nats-Rollup: all on its own key", false, func(ctx context.Context, w *world) error {
		m := nats.NewMsg("$KV." + network.DirectoryBucket + ".health")
		m.Header.Set("Nats-Rollup", "all")
		m.Data = []byte(`{}`)
		if _, err := w.healthJS.PublishMsg(ctx, m); err == nil {
			return errors.New("the rollup was stored")
		}
		return w.ngoListed(ctx)
	}},
	{"health forges ngo's events through a push consumer on a bucket", false, func(ctx context.Context, w *world) error {
		// Creating it is allowed (watches are push consumers), but the
		// server delivers only to a subscription on exactly the deliver
		// subject, and no one subscribes to an event's subject.
		subject := bus.Subject("ngo", "health", "org.refbus.referral.requested.v1")
		if err := putErr(ctx, w.healthJS, network.DirectoryBucket, "health", `{"forged":true}`); err != nil {
			return err
		}
		cfg := `{"stream_name":"KV_` + network.DirectoryBucket + `","config":{"durable_name":"forge","deliver_subject":"` + subject +
			`","filter_subject":"$KV.` + network.DirectoryBucket + `.health","ack_policy":"none","deliver_policy":"last_per_subject"}}`
		if _, err := w.health.RequestWithContext(ctx, "$JS.API.CONSUMER.CREATE.KV_"+network.DirectoryBucket+".forge.$KV."+network.DirectoryBucket+".health", []byte(cfg)); err != nil {
			return fmt.Errorf("make the consumer: %w", err)
		}
		defer func() {
			_ = w.adminJS.DeleteConsumer(context.WithoutCancel(ctx), "KV_"+network.DirectoryBucket, "forge")
		}()
		return always(time.Second, func() error {
			s, err := w.adminJS.Stream(ctx, bus.Stream)
			if err != nil {
				return err
			}
			if m, err := s.GetLastMsgForSubject(ctx, subject); err == nil {
				return fmt.Errorf("forged event at %d: %s", m.Sequence, m.Data)
			}
			return nil
		})
	}},
	{"anyone connects without credentials", false, func(ctx context.Context, w *world) error {
		nc, err := nats.Connect(w.url, nats.MaxReconnects(0))
		if err == nil {
			nc.Close()
			return errors.New("connected anonymously")
		}
		if !strings.Contains(strings.ToLower(err.Error()), "authorization violation") {
			return fmt.Errorf("refused, but not for authorization: %w", err)
		}
		return nil
	}},
	{"ngo of network two reads network one's events", false, func(ctx context.Context, w *world) error {
		s, err := w.ngo2JS.Stream(ctx, bus.Stream)
		if err != nil {
			return fmt.Errorf("network two's own stream: %w", err)
		}
		if n := s.CachedInfo().State.Msgs; n != 0 {
			return fmt.Errorf("network two's stream has %d messages, none of them its own", n)
		}
		c, err := w.ngo2JS.Consumer(ctx, bus.Stream, "ngo")
		if err != nil {
			return fmt.Errorf("network two's ngo durable: %w", err)
		}
		b, err := c.Fetch(1, jetstream.FetchMaxWait(300*time.Millisecond))
		if err != nil {
			return err
		}
		for m := range b.Messages() {
			return fmt.Errorf("network two's ngo got %s", m.Subject())
		}
		kv, err := w.ngo2JS.KeyValue(ctx, network.DirectoryBucket)
		if err != nil {
			return err
		}
		if _, err := kv.Get(ctx, "ngo"); !errors.Is(err, jetstream.ErrKeyNotFound) {
			return fmt.Errorf("network two sees network one's directory: %v", err)
		}
		return nil
	}},
	{"the auditor publishes an event", true, func(ctx context.Context, w *world) error {
		subject := bus.Subject("health", "ngo", "org.refbus.referral.requested.v1")
		return w.refused(ctx, w.auditor, subject, func(ctx context.Context) error {
			_, err := w.auditorJS.Publish(ctx, subject, []byte(`{}`))
			return err
		})
	}},
	{"the auditor writes a directory entry", true, func(ctx context.Context, w *world) error {
		return w.refused(ctx, w.auditor, "$KV."+network.DirectoryBucket+".ngo", func(ctx context.Context) error {
			_, err := w.auditorJS.Publish(ctx, "$KV."+network.DirectoryBucket+".ngo", []byte(`{}`))
			return err
		})
	}},
	{"the auditor deletes REFERRALS_AUDIT", true, func(ctx context.Context, w *world) error {
		return then(w.refused(ctx, w.auditor, "$JS.API.STREAM.DELETE."+bus.AuditStream, func(ctx context.Context) error {
			return w.auditorJS.DeleteStream(ctx, bus.AuditStream)
		}), func() error { return w.intact(ctx) })
	}},
	{"the auditor deletes a message of REFERRALS_AUDIT", true, func(ctx context.Context, w *world) error {
		return w.refused(ctx, w.auditor, "$JS.API.STREAM.MSG.DELETE."+bus.AuditStream, func(ctx context.Context) error {
			s, err := w.auditorJS.Stream(ctx, bus.AuditStream)
			if err != nil {
				return err
			}
			return s.DeleteMsg(ctx, 1)
		})
	}},
	{"the auditor rewrites ngo's durable through a consumer on REFERRALS", true, func(ctx context.Context, w *world) error {
		// An ordered consumer on REFERRALS would need the same right.
		return then(w.refused(ctx, w.auditor, "$JS.API.CONSUMER.CREATE."+bus.Stream, func(ctx context.Context) error {
			_, err := w.auditorJS.UpdateConsumer(ctx, bus.Stream, jetstream.ConsumerConfig{
				Durable: "ngo", FilterSubject: "refbus.>", AckPolicy: jetstream.AckExplicitPolicy, AckWait: time.Second, MaxDeliver: 2, MaxAckPending: 20000,
			})
			return err
		}), func() error { return w.intact(ctx) })
	}},
}

// ngoListed checks that ngo's directory entry is the one ngo put.
func (w *world) ngoListed(ctx context.Context) error {
	kv, err := w.adminJS.KeyValue(ctx, network.DirectoryBucket)
	if err != nil {
		return err
	}
	e, err := kv.Get(ctx, "ngo")
	if err != nil {
		return fmt.Errorf("ngo's directory entry: %w", err)
	}
	if string(e.Value()) != `{"agency":"ngo"}` {
		return fmt.Errorf("ngo's directory entry is now %s", e.Value())
	}
	return nil
}

// TestMatrix runs every attack against the permissions as they are: each
// must be refused, and each thing a node and an auditor need must work.
func TestMatrix(t *testing.T) {
	t.Parallel()
	w := newWorld(t, nil)
	ctx := context.Background()
	for _, a := range attacks {
		t.Run("refused/"+a.name, func(t *testing.T) {
			if err := a.try(ctx, w); err != nil {
				t.Fatal(err)
			}
		})
	}
	for _, c := range allowed {
		t.Run("allowed/"+c.name, func(t *testing.T) {
			conns := []*conn{w.health, w.ngo, w.education, w.auditor}
			before := make([]int, len(conns))
			for i, c := range conns {
				before[i] = len(c.violations())
			}
			c.do(t, ctx, w)
			for i, c := range conns {
				if v := c.violations()[before[i]:]; len(v) > 0 {
					t.Errorf("refused along the way: %q", v)
				}
			}
		})
	}
}

// TestMatrixGoesRed widens health's and the auditor's permissions to
// everything and runs the attacks again: each one the permissions close
// must now get through, or its case could not fail.
func TestMatrixGoesRed(t *testing.T) {
	t.Parallel()
	w := newWorld(t, func(p *jwt.Permissions) {
		p.Pub.Allow = jwt.StringList{">"}
		p.Sub.Allow = jwt.StringList{">"}
	})
	w.wait = time.Second
	ctx := context.Background()
	for _, a := range attacks {
		if !a.perm {
			continue
		}
		t.Run(a.name, func(t *testing.T) {
			w.seed(t) // an attack before may have got through
			err := a.try(ctx, w)
			if err == nil {
				t.Fatal("refused even with every permission: the case cannot fail")
			}
			t.Logf("goes red: %v", err)
		})
	}
}

// use is something a node or an auditor must be able to do.
type use struct {
	name string
	do   func(*testing.T, context.Context, *world)
}

var allowed = []use{
	{"health publishes an event to ngo and JetStream acks it", func(t *testing.T, ctx context.Context, w *world) {
		ack, err := w.healthJS.Publish(ctx, bus.Subject("health", "ngo", "org.refbus.referral.requested.v1"), []byte(`{}`))
		if err != nil || ack.Stream != bus.Stream {
			t.Fatalf("publish: %+v, %v", ack, err)
		}
	}},
	{"health pulls and acks on its own durable", func(t *testing.T, ctx context.Context, w *world) {
		c, err := w.healthJS.Consumer(ctx, bus.Stream, "health")
		if err != nil {
			t.Fatal(err)
		}
		b, err := c.Fetch(1, jetstream.FetchMaxWait(5*time.Second))
		if err != nil {
			t.Fatal(err)
		}
		m := <-b.Messages()
		if m == nil {
			t.Fatalf("nothing delivered: %v", b.Error())
		}
		if md, _ := m.Metadata(); md.Sequence.Stream != w.toHealth {
			t.Fatalf("got stream seq %d, want %d", md.Sequence.Stream, w.toHealth)
		}
		if err := m.DoubleAck(ctx); err != nil {
			t.Fatal(err)
		}
	}},
	{"health receives its own max-deliveries advisory", func(t *testing.T, ctx context.Context, w *world) {
		ch := make(chan *nats.Msg, 4)
		sub, err := w.health.ChanSubscribe("$JS.EVENT.ADVISORY.CONSUMER.MAX_DELIVERIES."+bus.Stream+".health", ch)
		if err != nil {
			t.Fatal(err)
		}
		defer func() { _ = sub.Unsubscribe() }()
		seq := publish(t, w.educationJS, bus.Subject("education", "health", "org.refbus.referral.requested.v1"))
		c, err := w.healthJS.Consumer(ctx, bus.Stream, "health")
		if err != nil {
			t.Fatal(err)
		}
		for range 2 { // MaxDeliver
			m, err := c.Next(jetstream.FetchMaxWait(5 * time.Second))
			if err != nil {
				t.Fatal(err)
			}
			if err := m.Nak(); err != nil {
				t.Fatal(err)
			}
		}
		// JetStream gives up on the event when it would deliver it again:
		// on the next pull.
		if m, err := c.Next(jetstream.FetchMaxWait(500 * time.Millisecond)); err == nil {
			t.Fatalf("delivered again after its last delivery: %s", m.Subject())
		}
		a := waitMsg(t, ch, 10*time.Second)
		if !strings.Contains(string(a.Data), `"stream_seq":`+strconv.FormatUint(seq, 10)) {
			t.Fatalf("advisory %s, want stream_seq %d", a.Data, seq)
		}
	}},
	{"health puts its own directory entry, which ngo reads", func(t *testing.T, ctx context.Context, w *world) {
		put(t, w.healthJS, network.DirectoryBucket, "health", `{"agency":"health"}`)
		kv, err := w.ngoJS.KeyValue(ctx, network.DirectoryBucket)
		if err != nil {
			t.Fatal(err)
		}
		if e, err := kv.Get(ctx, "health"); err != nil || string(e.Value()) != `{"agency":"health"}` {
			t.Fatalf("ngo reads health's entry: %v", err)
		}
	}},
	{"health gets, lists and watches the directory and the registry", func(t *testing.T, ctx context.Context, w *world) {
		// Enough that the watch needs flow control (about 2 MB).
		akv, err := w.adminJS.KeyValue(ctx, network.DirectoryBucket)
		if err != nil {
			t.Fatal(err)
		}
		for i := range 160 {
			if _, err := akv.Put(ctx, fmt.Sprintf("bulk-%d", i), make([]byte, 16<<10)); err != nil {
				t.Fatal(err)
			}
		}
		for bucket, key := range map[string]string{network.DirectoryBucket: "ngo", network.RegistryBucket: "health"} {
			kv, err := w.healthJS.KeyValue(ctx, bucket)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := kv.Get(ctx, key); err != nil {
				t.Fatalf("get %s in %s: %v", key, bucket, err)
			}
			if _, err := kv.GetRevision(ctx, key, 1); err != nil && !errors.Is(err, jetstream.ErrKeyNotFound) {
				t.Fatalf("get revision of %s in %s: %v", key, bucket, err)
			}
			keys, err := kv.Keys(ctx)
			if err != nil || len(keys) == 0 {
				t.Fatalf("keys of %s: %v, %v", bucket, keys, err)
			}
			wctx, cancel := context.WithTimeout(ctx, 20*time.Second)
			watch, err := kv.WatchAll(wctx)
			if err != nil {
				t.Fatal(err)
			}
			n := 0
			for e := range watch.Updates() {
				if e == nil {
					break
				}
				n++
			}
			werr := wctx.Err()
			cancel()
			if werr != nil || n != len(keys) {
				t.Fatalf("watch of %s: %d of %d keys (%v)", bucket, n, len(keys), werr)
			}
			if err := watch.Stop(); err != nil {
				t.Fatal(err)
			}
		}
	}},
	{"the auditor replays REFERRALS_AUDIT with an ordered consumer", func(t *testing.T, ctx context.Context, w *world) {
		s, err := w.adminJS.Stream(ctx, bus.Stream)
		if err != nil {
			t.Fatal(err)
		}
		last := s.CachedInfo().State.LastSeq
		c, err := w.auditorJS.OrderedConsumer(ctx, bus.AuditStream, jetstream.OrderedConsumerConfig{})
		if err != nil {
			t.Fatal(err)
		}
		var seen uint64
		poll.Until(t, 10*time.Second, func() error {
			m, err := c.Next(jetstream.FetchMaxWait(time.Second))
			if err != nil {
				return err
			}
			if md, _ := m.Metadata(); md != nil {
				seen = md.Sequence.Stream
			}
			if seen < last {
				return fmt.Errorf("replayed up to %d of %d", seen, last)
			}
			return nil
		})
	}},
	{"the auditor reads an event of REFERRALS by its sequence", func(t *testing.T, ctx context.Context, w *world) {
		s, err := w.auditorJS.Stream(ctx, bus.Stream)
		if err != nil {
			t.Fatal(err)
		}
		m, err := s.GetMsg(ctx, w.toNgo)
		if err != nil || m.Subject != bus.Subject("education", "ngo", "org.refbus.referral.requested.v1") {
			t.Fatalf("get %d: %v", w.toNgo, err)
		}
	}},
}
