package main

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/google/uuid"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/refbus/refbus/pkg/bus"
	"github.com/refbus/refbus/pkg/event"
	"github.com/refbus/refbus/schemas"
)

// rawStream is the scratch stream of the raw baseline, deleted after each
// round.
const (
	rawStream  = "BENCH_RAW"
	rawSubject = "bench.raw"
)

// referralPayload builds a referral event the way an agency does and
// returns it as the relay would publish it, so the raw baseline moves
// messages of the same size with the same headers.
func referralPayload() (*nats.Msg, error) {
	reg, err := schemas.Registry()
	if err != nil {
		return nil, fmt.Errorf("load schemas: %w", err)
	}
	data := map[string]string{"to_agency": "education", "service": "family_support", "note": benchNote}
	ev, err := reg.New(bus.Source("health"), schemas.TypeRequested, uuid.Must(uuid.NewV7()).String(), data)
	if err != nil {
		return nil, fmt.Errorf("build referral event: %w", err)
	}
	ev.SetExtension(event.ExtCaseID, uuid.Must(uuid.NewV7()).String())
	ev.SetExtension(event.ExtTraceparent, "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01")
	event.SetSequence(ev, 1)
	return event.NewMsg(rawSubject, ev)
}

// rawRuns are the rates of the raw baseline's rounds, and their median.
type rawRuns struct {
	rounds []float64
	median float64
}

// rawBaseline publishes n copies of msg asynchronously into a scratch
// stream, waits for every ack, and does that rounds times.
func rawBaseline(ctx context.Context, url string, msg *nats.Msg, n, rounds int, timeout time.Duration) (rawRuns, error) {
	var r rawRuns
	nc, err := nats.Connect(url, nats.Name("refbus-bench"))
	if err != nil {
		return r, fmt.Errorf("raw baseline: connect: %w", err)
	}
	defer nc.Close()
	for i := range rounds {
		rate, err := rawRound(ctx, nc, msg, n, timeout)
		if err != nil {
			return r, fmt.Errorf("raw baseline round %d: %w", i+1, err)
		}
		r.rounds = append(r.rounds, rate)
	}
	sorted := slices.Sorted(slices.Values(r.rounds))
	r.median = sorted[len(sorted)/2]
	if len(sorted)%2 == 0 {
		r.median = (sorted[len(sorted)/2-1] + sorted[len(sorted)/2]) / 2
	}
	return r, nil
}

func rawRound(ctx context.Context, nc *nats.Conn, msg *nats.Msg, n int, timeout time.Duration) (rate float64, err error) {
	var failed atomic.Int64
	var firstErr error
	var errOnce sync.Once
	// The same pending window as the agencies' relays.
	js, err := jetstream.New(nc, jetstream.WithPublishAsyncMaxPending(4096),
		jetstream.WithPublishAsyncErrHandler(func(_ jetstream.JetStream, _ *nats.Msg, err error) {
			errOnce.Do(func() { firstErr = err })
			failed.Add(1)
		}))
	if err != nil {
		return 0, err
	}
	// Like REFERRALS apart from its retention rules: file storage, one
	// replica, an hour's dedupe window.
	s, err := js.CreateStream(ctx, jetstream.StreamConfig{
		Name:       rawStream,
		Subjects:   []string{rawSubject},
		Storage:    jetstream.FileStorage,
		Replicas:   1,
		Duplicates: time.Hour,
	})
	if err != nil {
		return 0, fmt.Errorf("create stream %s: %w", rawStream, err)
	}
	defer func() {
		if derr := js.DeleteStream(context.WithoutCancel(ctx), rawStream); derr != nil {
			err = errors.Join(err, fmt.Errorf("delete stream %s: %w", rawStream, derr))
		}
	}()

	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	msgID := msg.Header.Get(nats.MsgIdHdr)
	start := time.Now()
	for i := range n {
		if i%1024 == 0 && ctx.Err() != nil {
			return 0, fmt.Errorf("published %d of %d: %w", i, n, ctx.Err())
		}
		// A message id of its own, as each event has, so every message
		// goes through the dedupe check and none is dropped by it.
		h := make(nats.Header, len(msg.Header))
		for k, v := range msg.Header {
			h[k] = v
		}
		h.Set(nats.MsgIdHdr, msgID+"#"+strconv.Itoa(i))
		if _, err := js.PublishMsgAsync(&nats.Msg{Subject: rawSubject, Header: h, Data: msg.Data}); err != nil {
			return 0, fmt.Errorf("publish %d of %d: %w", i+1, n, err)
		}
	}
	select {
	case <-js.PublishAsyncComplete():
	case <-ctx.Done():
		return 0, fmt.Errorf("gave up waiting: %d of %d acks missing: %w", js.PublishAsyncPending(), n, ctx.Err())
	}
	elapsed := time.Since(start)
	if k := failed.Load(); k > 0 {
		return 0, fmt.Errorf("%d of %d publishes failed, the first: %w", k, n, firstErr)
	}
	info, err := s.Info(ctx)
	if err != nil {
		return 0, fmt.Errorf("stream info: %w", err)
	}
	if info.State.Msgs != uint64(n) {
		return 0, fmt.Errorf("stream %s holds %d messages after %d acknowledged publishes", rawStream, info.State.Msgs, n)
	}
	return float64(n) / elapsed.Seconds(), nil
}
