// Package schemas holds the JSON Schemas of every refbus event type and the
// AsyncAPI document of the channels that carry them.
package schemas

import (
	"embed"

	"github.com/refbus/refbus/pkg/event"
)

// FS holds the schema files.
//
//go:embed *.json
var FS embed.FS

// Registry compiles the schemas.
func Registry() (*event.Registry, error) { return event.NewRegistry(FS) }
