package verify

import (
	"context"
	"errors"
	"runtime"

	"golang.org/x/sync/errgroup"

	"github.com/refbus/refbus/services/auditor/internal/stream"
)

// batchSize is how many messages travel together through the pipeline:
// enough to make the hand-offs cheap, few enough to keep memory small.
const batchSize = 256

type batch struct {
	msgs []*stream.Msg
	out  []inspected
	done chan struct{}
}

// ReadFunc reads messages in stream order and calls fn with each, as
// stream.Read does.
type ReadFunc func(fn func(*stream.Msg) error) error

// Run verifies every message read calls back with. The stateless checks
// (decoding, schema) run on workers goroutines, GOMAXPROCS when 0; the
// checks against history run on one, in stream order. Memory stays bounded
// by the batches in flight plus the verifier's records.
func (v *Verifier) Run(ctx context.Context, read ReadFunc, workers int) error {
	if workers <= 0 {
		workers = runtime.GOMAXPROCS(0)
	}
	g, ctx := errgroup.WithContext(ctx)
	work := make(chan *batch, 2*workers)
	order := make(chan *batch, 4*workers)
	for range workers {
		g.Go(func() error {
			for b := range work {
				for i, m := range b.msgs {
					b.out[i] = v.inspect(m)
				}
				close(b.done)
			}
			return nil
		})
	}
	g.Go(func() error {
		for b := range order {
			select {
			case <-b.done:
			case <-ctx.Done():
				return ctx.Err()
			}
			for i := range b.out {
				v.apply(&b.out[i])
			}
		}
		return nil
	})
	send := func(b *batch) error {
		// order first: the checker waits on b.done in the order batches
		// were read, whichever worker finishes first.
		for _, ch := range []chan *batch{order, work} {
			select {
			case ch <- b:
			case <-ctx.Done():
				return ctx.Err()
			}
		}
		return nil
	}
	cur := &batch{msgs: make([]*stream.Msg, 0, batchSize)}
	readErr := read(func(m *stream.Msg) error {
		cur.msgs = append(cur.msgs, m)
		if len(cur.msgs) < batchSize {
			return nil
		}
		b := cur
		cur = &batch{msgs: make([]*stream.Msg, 0, batchSize)}
		b.out, b.done = make([]inspected, len(b.msgs)), make(chan struct{})
		return send(b)
	})
	if readErr == nil && len(cur.msgs) > 0 {
		cur.out, cur.done = make([]inspected, len(cur.msgs)), make(chan struct{})
		readErr = send(cur)
	}
	close(work)
	close(order)
	err := g.Wait()
	if readErr != nil && !(errors.Is(readErr, context.Canceled) && err != nil) {
		return readErr
	}
	return err
}
