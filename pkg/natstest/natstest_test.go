package natstest_test

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/refbus/refbus/pkg/natstest"
	"github.com/refbus/refbus/pkg/poll"
)

// A child-process server dies for real on Kill (its clients lose it and
// its port is closed) and comes back on Start with its streams, on the same
// URL; a client that kept reconnecting finds it again.
func TestProcessKillAndStart(t *testing.T) {
	t.Parallel()
	p := natstest.NewProcess(t)
	ctx := context.Background()
	disconnected := make(chan struct{}, 1)
	nc, err := nats.Connect(p.ClientURL(), nats.MaxReconnects(-1), nats.ReconnectWait(50*time.Millisecond),
		nats.DisconnectErrHandler(func(*nats.Conn, error) {
			select {
			case disconnected <- struct{}{}:
			default:
			}
		}))
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: "S", Subjects: []string{"s.>"}, Storage: jetstream.FileStorage}); err != nil {
		t.Fatal(err)
	}

	p.Kill()
	select {
	case <-disconnected:
	case <-time.After(5 * time.Second):
		t.Fatal("the client did not lose the killed server")
	}
	if c, err := nats.Connect(p.ClientURL(), nats.Timeout(time.Second)); err == nil {
		c.Close()
		t.Fatal("a killed server still accepts connections")
	}

	p.Start()
	poll.Until(t, 10*time.Second, func() error {
		_, err := js.Stream(ctx, "S")
		return err
	})
}

// In a cluster of child processes, the server that leads an R3 stream
// dies for real on Kill; another server takes the lead, and publishes are
// still acknowledged. Started again, the lost server catches up, and the
// stream keeps every message.
func TestProcessClusterLosesStreamLeader(t *testing.T) {
	t.Parallel()
	c := natstest.NewProcessCluster(t, 3)
	ctx := context.Background()
	nc, err := nats.Connect(c.URLs(), nats.MaxReconnects(-1), nats.ReconnectWait(50*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: "S", Subjects: []string{"s.>"}, Storage: jetstream.FileStorage, Replicas: 3}); err != nil {
		t.Fatal(err)
	}
	publish := func(k int) {
		t.Helper()
		for range k {
			poll.Until(t, 10*time.Second, func() error {
				_, err := js.Publish(ctx, "s.x", []byte("x"))
				return err
			})
		}
	}
	publish(10)

	var leader *natstest.Process
	poll.Until(t, 10*time.Second, func() (err error) {
		leader, err = c.StreamLeader("S")
		return err
	})
	leader.Kill()
	poll.Until(t, 20*time.Second, func() error {
		l, err := c.StreamLeader("S")
		if err == nil && l == leader {
			err = errors.New("the killed server still leads the stream")
		}
		return err
	})
	publish(10)

	leader.Start()
	poll.Until(t, 20*time.Second, func() error {
		s, err := js.Stream(ctx, "S")
		if err != nil {
			return err
		}
		info := s.CachedInfo()
		if info.State.Msgs != 20 {
			return fmt.Errorf("the stream holds %d messages, want 20", info.State.Msgs)
		}
		if len(info.Cluster.Replicas) != 2 {
			return fmt.Errorf("the stream has %d replicas besides its leader, want 2", len(info.Cluster.Replicas))
		}
		for _, r := range info.Cluster.Replicas {
			if !r.Current || r.Offline {
				return fmt.Errorf("replica %s is not current", r.Name)
			}
		}
		return nil
	})
}
