package receipt

import "embed"

// Schema holds the JSON Schema of a receipt's data (receipt.v1.json). An
// application compiles it into its registry with its own schemas:
//
//	event.NewRegistry(appSchemas, receipt.Schema)
//
//go:embed receipt.v1.json
var Schema embed.FS
