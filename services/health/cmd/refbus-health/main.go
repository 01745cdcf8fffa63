// Command refbus-health runs a health node (polyclinics, perinatal
// centres, patronage nurses) against its own Postgres and a NATS cluster.
// `refbus-health -h` lists its settings.
package main

import (
	"github.com/refbus/refbus/services/health"
	"github.com/refbus/refbus/services/internal/core"
)

func main() { core.Main(health.New()) }
