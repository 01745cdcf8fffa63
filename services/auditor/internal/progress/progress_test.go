package progress

import (
	"bytes"
	"testing"
)

// Off a terminal there is no meter, and a nil meter does nothing.
func TestNotATerminal(t *testing.T) {
	var b bytes.Buffer
	m := Start(&b, "replay")
	if m != nil {
		t.Fatal("a meter on a buffer")
	}
	m.Step(1, 2)
	m.Stop()
	if b.Len() != 0 {
		t.Errorf("wrote %q", b.String())
	}
}
