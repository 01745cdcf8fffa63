// Command refbus-education runs an education node (early-intervention
// centres, PMPK, schools) against its own Postgres and a NATS cluster.
// `refbus-education -h` lists its settings.
package main

import (
	"github.com/refbus/refbus/services/education"
	"github.com/refbus/refbus/services/internal/core"
)

func main() { core.Main(education.New()) }
