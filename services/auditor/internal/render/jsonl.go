package render

import (
	"bufio"
	"bytes"
	"encoding/json"
	"io"

	"github.com/refbus/refbus/pkg/event"
	"github.com/refbus/refbus/services/auditor/internal/stream"
)

// JSONL writes each event as one line of JSON: the structured CloudEvent
// exactly as stored. Two exceptions keep the output JSON Lines: a body with
// line breaks between its tokens is compacted, and a binary-mode message is
// written as the structured event it decodes to.
type JSONL struct {
	w   *bufio.Writer
	buf bytes.Buffer
}

// NewJSONL returns a JSONL writer on w.
func NewJSONL(w io.Writer) *JSONL { return &JSONL{w: bufio.NewWriterSize(w, 64<<10)} }

// Write writes the line of m, or returns an error wrapping ErrSkipped if m
// is not a JSON object.
func (j *JSONL) Write(m *stream.Msg) error {
	if m.Err != nil {
		return skipped(m, "%v", m.Err)
	}
	body := m.Data
	if m.Binary() {
		ev, err := event.Decode(m.Header, m.Data)
		if err != nil {
			return skipped(m, "%v", err)
		}
		if body, err = event.Encode(ev); err != nil {
			return skipped(m, "%v", err)
		}
	}
	trimmed := bytes.TrimSpace(body)
	if len(trimmed) < 2 || trimmed[0] != '{' || trimmed[len(trimmed)-1] != '}' {
		return skipped(m, "body is not a JSON object")
	}
	if bytes.IndexByte(trimmed, '\n') >= 0 || bytes.IndexByte(trimmed, '\r') >= 0 {
		j.buf.Reset()
		if err := json.Compact(&j.buf, trimmed); err != nil {
			return skipped(m, "body is not JSON: %v", err)
		}
		trimmed = j.buf.Bytes()
	}
	if _, err := j.w.Write(trimmed); err != nil {
		return err
	}
	return j.w.WriteByte('\n')
}

// Close flushes the output.
func (j *JSONL) Close() error { return j.w.Flush() }
