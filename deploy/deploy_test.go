// Package deploy holds the deployment configuration; its tests check that
// the NATS configs load and run. What each identity may do is
// services/internal/identity's (its permission matrix); the deploy
// guide's walk-through is services/admin's TestWalkThrough.
package deploy

import (
	"testing"
)

// Every shipped config loads with nats-server's own parser (with TLS
// files made for the test where a config names them).
func TestConfigsLoad(t *testing.T) {
	confs := copyShipped(t)
	for _, f := range []string{"single.conf", "cluster-1.conf", "cluster-2.conf", "cluster-3.conf"} {
		confs.load(t, f)
	}
}
