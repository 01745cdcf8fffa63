package web

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"sync"
	"time"

	"github.com/refbus/refbus/services/internal/core/app"
)

// watcher tells the open pages of one UI that referrals may have changed.
// One loop per UI looks, while anyone listens, at the newest outbox and
// inbox rows (two index lookups: every change to a referral here comes with
// one or the other), so a hundred open pages cost one query a second.
type watcher struct {
	app   *app.App
	every time.Duration
	log   *slog.Logger

	mu     sync.Mutex
	subs   map[chan struct{}]struct{}
	cancel context.CancelFunc
}

func newWatcher(a *app.App, every time.Duration, log *slog.Logger) *watcher {
	return &watcher{app: a, every: every, log: log, subs: map[chan struct{}]struct{}{}}
}

// subscribe returns a channel that receives a value after each change, and
// the function that ends the subscription.
func (w *watcher) subscribe() (<-chan struct{}, func()) {
	ch := make(chan struct{}, 1)
	w.mu.Lock()
	defer w.mu.Unlock()
	w.subs[ch] = struct{}{}
	if w.cancel == nil {
		ctx, cancel := context.WithCancel(context.Background())
		w.cancel = cancel
		go w.run(ctx)
	}
	return ch, func() {
		w.mu.Lock()
		defer w.mu.Unlock()
		delete(w.subs, ch)
		if len(w.subs) == 0 && w.cancel != nil {
			w.cancel()
			w.cancel = nil
		}
	}
}

func (w *watcher) run(ctx context.Context) {
	last, err := w.app.ChangeMark(ctx)
	tick := time.NewTicker(w.every)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		m, merr := w.app.ChangeMark(ctx)
		if merr != nil {
			if ctx.Err() == nil {
				w.log.Warn("look for changes", "err", merr)
			}
			continue
		}
		if err == nil && m == last {
			continue
		}
		last, err = m, nil
		w.mu.Lock()
		for ch := range w.subs {
			select {
			case ch <- struct{}{}:
			default: // the page has not caught up with the last change yet
			}
		}
		w.mu.Unlock()
	}
}

// heartbeat keeps proxies from closing a quiet event stream.
const heartbeat = 25 * time.Second

// events streams `changed` events to a page, which then fetches its live
// part again (hx-trigger="sse:changed").
func (u *UI) events(w http.ResponseWriter, r *http.Request) {
	rc := http.NewResponseController(w)
	w.Header().Set("Content-Type", "text/event-stream")
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("X-Accel-Buffering", "no")
	w.WriteHeader(http.StatusOK)
	ch, stop := u.watch.subscribe()
	defer stop()
	fmt.Fprint(w, "retry: 3000\n\n")
	if err := rc.Flush(); err != nil {
		return
	}
	beat := time.NewTicker(heartbeat)
	defer beat.Stop()
	for {
		select {
		case <-r.Context().Done():
			return
		case <-u.stopped:
			return
		case <-ch:
			fmt.Fprint(w, "event: changed\ndata: changed\n\n")
		case <-beat.C:
			fmt.Fprint(w, ": still here\n\n")
		}
		if err := rc.Flush(); err != nil {
			return
		}
	}
}
