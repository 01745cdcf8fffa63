package socialdb

import (
	"embed"
	"io/fs"

	"github.com/refbus/refbus/pkg/pgmigrate"
)

//go:embed migration/*.sql
var migrationFiles embed.FS

// Migrations is the migration line of social protection's work records: its tables, in the Postgres
// schema "social".
var Migrations = pgmigrate.Line{Schema: "social", FS: must(fs.Sub(migrationFiles, "migration"))}

func must(f fs.FS, err error) fs.FS {
	if err != nil {
		panic(err)
	}
	return f
}
