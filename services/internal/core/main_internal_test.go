package core

import (
	"strings"
	"testing"

	"github.com/refbus/refbus/pkg/event"
)

// A node without a signing seed or trust anchor does not start, saying
// what is missing and how to get it, unless asked to run unsigned for
// development.
func TestRequireSigned(t *testing.T) {
	signed := Config{SigningSeed: []byte("S..."), Anchor: "A..."}
	for _, c := range []struct {
		name string
		cfg  Config
		dev  bool
		want string // "" for none
	}{
		{"bundle", signed, false, ""},
		{"fixed trust list", Config{SigningSeed: []byte("S..."), Trust: event.Trust{"ngo": "A..."}}, false, ""},
		{"no seed", Config{Anchor: "A..."}, false, "has no signing seed (REFBUS_SIGNING_SEED): a node signs"},
		{"no anchor", Config{SigningSeed: []byte("S...")}, false, "has no trust anchor (REFBUS_ANCHOR"},
		{"neither", Config{}, false, "REFBUS_SIGNING_SEED) and no trust anchor"},
		{"neither, for development", Config{}, true, ""},
	} {
		err := requireSigned(c.cfg, c.dev)
		switch {
		case c.want == "" && err != nil:
			t.Errorf("%s: %v", c.name, err)
		case c.want != "" && (err == nil || !strings.Contains(err.Error(), c.want) || !strings.Contains(err.Error(), "-dev-unsigned")):
			t.Errorf("%s: %v, want an error saying %q and naming -dev-unsigned", c.name, err, c.want)
		}
	}
}
