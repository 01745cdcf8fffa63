package main

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/refbus/refbus/pkg/bus"
	"github.com/refbus/refbus/pkg/event"
	"github.com/refbus/refbus/pkg/natstest"
	"github.com/refbus/refbus/schemas"
)

func TestScratch(t *testing.T) {
	srv := natstest.New(t)
	nc := srv.Connect()
	js, _ := jetstream.New(nc, jetstream.WithPublishAsyncMaxPending(4096))
	ctx := context.Background()
	if _, err := bus.EnsureStream(ctx, js, bus.StreamConfig{}); err != nil {
		t.Fatal(err)
	}
	reg, _ := schemas.Registry()
	n := 200000
	start := time.Now()
	for i := 0; i < n; i++ {
		ev, err := reg.New(bus.Source("health"), "org.refbus.referral.requested.v1", uuid.Must(uuid.NewV7()).String(), map[string]string{"to_agency": "ngo", "service": "shelter", "note": "Bench referral: family of four, two children under five; the mother asks for an assessment and for help with housing before winter. Caseworker available on weekdays."})
		if err != nil {
			t.Fatal(err)
		}
		ev.SetExtension("caseid", uuid.Must(uuid.NewV7()).String())
		ev.SetExtension("traceparent", "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01")
		event.SetSequence(ev, 1)
		m, _ := event.NewMsg(bus.Subject("health", "ngo", ev.Type()), ev)
		if _, err := js.PublishMsgAsync(m); err != nil {
			t.Fatal(err)
		}
	}
	<-js.PublishAsyncComplete()
	t.Logf("published %d in %v, size %d", n, time.Since(start), 0)
	_, err := js.OrderedConsumer(ctx, bus.Stream, jetstream.OrderedConsumerConfig{FilterSubjects: []string{"refbus.health.>", "refbus.*.health.>"}})
	t.Logf("overlap: %v", err)
	for _, pm := range []int{500, 1000, 5000} {
		for r := 0; r < 2; r++ {
			c, err := js.OrderedConsumer(ctx, bus.Stream, jetstream.OrderedConsumerConfig{})
			if err != nil {
				t.Fatal(err)
			}
			it, err := c.Messages(jetstream.PullMaxMessages(pm))
			if err != nil {
				t.Fatal(err)
			}
			start = time.Now()
			var bytes int
			for i := 0; i < n; i++ {
				m, err := it.Next()
				if err != nil {
					t.Fatal(err)
				}
				md, _ := m.Metadata()
				_ = md
				bytes += len(m.Data())
			}
			it.Stop()
			el := time.Since(start)
			fmt.Printf("pm=%d read %d in %v: %.0f/s avg %d bytes\n", pm, n, el, float64(n)/el.Seconds(), bytes/n)
		}
	}
}
