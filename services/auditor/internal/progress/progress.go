// Package progress shows how far a long read has come, on one line of a
// terminal that it rewrites a few times a second.
package progress

import (
	"fmt"
	"io"
	"os"
	"sync"
	"sync/atomic"
	"time"
)

// Meter counts messages read and redraws its line every Interval. The
// reading goroutine calls Step; a Meter draws from its own goroutine, so
// Step costs three atomic stores.
type Meter struct {
	w     io.Writer
	label string
	start time.Time
	n     atomic.Uint64
	seq   atomic.Uint64
	left  atomic.Uint64
	done  chan struct{}
	wg    sync.WaitGroup
}

// Interval is how often a Meter redraws.
const Interval = 250 * time.Millisecond

// Start draws a meter labelled label on w until Stop. It returns nil, on
// which Step and Stop do nothing, when w is not a terminal: progress lines
// would only clutter a log or a pipe.
func Start(w io.Writer, label string) *Meter {
	if !IsTerminal(w) {
		return nil
	}
	m := &Meter{w: w, label: label, start: time.Now(), done: make(chan struct{})}
	m.wg.Add(1)
	go m.loop()
	return m
}

// IsTerminal reports whether w is a character device such as a terminal.
func IsTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	fi, err := f.Stat()
	return err == nil && fi.Mode()&os.ModeCharDevice != 0
}

// Step records one message at stream sequence seq with left more to come.
func (m *Meter) Step(seq, left uint64) {
	if m == nil {
		return
	}
	m.n.Add(1)
	m.seq.Store(seq)
	m.left.Store(left)
}

// Stop clears the line and stops drawing.
func (m *Meter) Stop() {
	if m == nil {
		return
	}
	close(m.done)
	m.wg.Wait()
	fmt.Fprint(m.w, "\r\033[K")
}

func (m *Meter) loop() {
	defer m.wg.Done()
	t := time.NewTicker(Interval)
	defer t.Stop()
	for {
		select {
		case <-m.done:
			return
		case <-t.C:
			n := m.n.Load()
			rate := float64(n) / time.Since(m.start).Seconds()
			fmt.Fprintf(m.w, "\r\033[K%s: %d events, at seq %d, %d to go, %.0f/s", m.label, n, m.seq.Load(), m.left.Load(), rate)
		}
	}
}
