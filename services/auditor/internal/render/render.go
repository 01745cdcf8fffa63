// Package render writes the events of a replay for people and for tools:
// a table, JSON Lines of the events as stored, or an HTML timeline per case.
package render

import (
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/refbus/refbus/services/auditor/internal/stream"
)

// Writer renders messages one at a time, in stream order.
type Writer interface {
	// Write renders m. An error wrapping ErrSkipped means m was left out
	// and the writer can go on; any other error is final.
	Write(m *stream.Msg) error
	// Close writes what is buffered.
	Close() error
}

// ErrSkipped reports a message a writer could not render.
var ErrSkipped = errors.New("left out")

func skipped(m *stream.Msg, format string, args ...any) error {
	return fmt.Errorf("seq %d: %w: %s", m.Seq, ErrSkipped, fmt.Sprintf(format, args...))
}

// namespace starts every refbus event type; where types are shown, it is
// left out.
const namespace = "org.refbus."

// shortType drops the namespace of a refbus event type:
// org.refbus.referral.requested.v1 reads referral.requested.v1.
func shortType(t string) string { return strings.TrimPrefix(t, namespace) }

// timeLayout shows event times in UTC to the millisecond, one width for all.
const timeLayout = "2006-01-02T15:04:05.000Z"

// eventTime renders an event's time attribute in UTC, or as it is written
// if it is not an RFC 3339 time.
func eventTime(s string) string {
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		return s
	}
	return t.UTC().Format(timeLayout)
}
