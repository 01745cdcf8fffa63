package busdb

import (
	"embed"
	"io/fs"
)

//go:embed migration/*.sql
var migrationFiles embed.FS

// Migrations are the goose SQL migrations of the bus's store (migration/),
// at the root of the FS; package busstore hands them out as a line.
var Migrations = func() fs.FS {
	sub, err := fs.Sub(migrationFiles, "migration")
	if err != nil {
		panic(err) // a constant directory name
	}
	return sub
}()
