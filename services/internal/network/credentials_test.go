package network

import (
	"strings"
	"testing"
)

// No password or token of a NATS URL reaches a message.
func TestHideCredentials(t *testing.T) {
	for in, want := range map[string]string{
		"nats://127.0.0.1:4222":                              "nats://127.0.0.1:4222",
		"nats://user:s3cret@nats-1:4222,nats://tok3n@nats-2": "nats://REDACTED@nats-1:4222,nats://REDACTED@nats-2",
		"nats://us er:s3cret@%zz":                            "(an address that does not parse)",
	} {
		got := HideCredentials(in)
		if got != want || strings.Contains(got, "s3cret") || strings.Contains(got, "tok3n") {
			t.Errorf("HideCredentials(%q) = %q, want %q", in, got, want)
		}
	}
}
