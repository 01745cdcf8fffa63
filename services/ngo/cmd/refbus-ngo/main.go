// Command refbus-ngo runs an NGO node (a crisis centre or shelter, the
// Mother's Home, a child-rights NGO) against its own Postgres and a NATS
// cluster. `refbus-ngo -h` lists its settings.
package main

import (
	"github.com/refbus/refbus/services/internal/core"
	"github.com/refbus/refbus/services/ngo"
)

func main() { core.Main(ngo.New()) }
