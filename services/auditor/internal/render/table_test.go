package render

import (
	"strings"
	"testing"

	"github.com/nats-io/nats.go"

	"github.com/refbus/refbus/pkg/receipt"
	"github.com/refbus/refbus/services/auditor/internal/stream"
)

func TestAppendTime(t *testing.T) {
	for raw, want := range map[string]string{
		"2026-11-22T09:00:00Z":           "2026-11-22T09:00:00.000Z",
		"2026-11-22T09:00:00.5Z":         "2026-11-22T09:00:00.500Z",
		"2026-11-22T09:00:00.123456789Z": "2026-11-22T09:00:00.123Z",
		"2026-11-22T15:00:00+06:00":      "2026-11-22T09:00:00.000Z",
		"2026-11-22T09:00:00.25-01:30":   "2026-11-22T10:30:00.250Z",
		"2026-13-22T09:00:00Z":           "2026-13-22T09:00:00Z",
		"yesterday\x1b[2J":               "yesterday?[2J",
		"":                               "-",
	} {
		if got := string(appendTime(nil, []byte(raw))); got != want {
			t.Errorf("%q: %q, want %q", raw, got, want)
		}
	}
}

// A value an event's sender chose cannot break a line of the table.
func TestTableCleansValues(t *testing.T) {
	var out strings.Builder
	tab := NewTable(&out)
	body := `{"type":"` + receipt.Type + `","subject":"r1\n\u001b[31mred","caseid":"c1","time":"2026-11-22T09:00:00Z"}`
	m := &stream.Msg{Seq: 7, Subject: "refbus.ngo.health.receipt", Header: nats.Header{}, Data: []byte(body)}
	if err := tab.Write(m); err != nil {
		t.Fatal(err)
	}
	if err := tab.Close(); err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSuffix(out.String(), "\n"), "\n")
	if len(lines) != 2 || strings.ContainsAny(lines[1], "\x1b\r") {
		t.Fatalf("table:\n%q", out.String())
	}
	want := "        7  2026-11-22T09:00:00.000Z  ngo → health           receipt.v1                r1??[31mred                           c1"
	if lines[1] != want {
		t.Errorf("line\n%q\nwant\n%q", lines[1], want)
	}
}
