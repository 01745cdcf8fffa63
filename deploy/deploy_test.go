// Package deploy holds the deployment configuration; its tests check that
// the NATS configs load and run. What each identity may do is
// services/internal/identity's (its permission matrix); the deploy
// guide's walk-through is services/admin's TestWalkThrough.
package deploy

import (
	"testing"

	"github.com/nats-io/nats-server/v2/server"
)

// Every shipped config loads with nats-server's own parser (with TLS
// files made for the test where a config names them).
func TestConfigsLoad(t *testing.T) {
	confs := copyShipped(t)
	for _, f := range []string{"single.conf", "cluster-1.conf", "cluster-2.conf", "cluster-3.conf"} {
		opts := confs.load(t, f)
		// The store is encrypted, with the key from its own file.
		if opts.JetStreamCipher != server.ChaCha || opts.JetStreamKey != "0123456789abcdef0123456789abcdef" {
			t.Errorf("%s: store cipher %v, key %q: want chacha with the key from nats-store-key.conf", f, opts.JetStreamCipher, opts.JetStreamKey)
		}
	}
}
