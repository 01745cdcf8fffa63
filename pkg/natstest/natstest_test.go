package natstest_test

import (
	"context"
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
