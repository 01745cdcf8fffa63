// Command refbus-social runs a social protection node (labour and social
// protection, family support centres) against its own Postgres and a NATS
// cluster. `refbus-social -h` lists its settings.
package main

import (
	"github.com/refbus/refbus/services/internal/core"
	"github.com/refbus/refbus/services/social"
)

func main() { core.Main(social.New()) }
