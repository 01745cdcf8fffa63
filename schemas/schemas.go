// Package schemas holds the JSON Schemas of every refbus event type and the
// AsyncAPI document of the channels that carry them.
package schemas

import (
	"embed"

	"github.com/refbus/refbus/pkg/event"
	"github.com/refbus/refbus/pkg/receipt"
)

// FS holds the schema files.
//
//go:embed *.json
var FS embed.FS

// Registry compiles the schemas, with the bus's own (the receipt's).
func Registry() (*event.Registry, error) { return event.NewRegistry(FS, receipt.Schema) }
