package ngodb

import (
	"embed"
	"io/fs"

	"github.com/refbus/refbus/pkg/pgmigrate"
)

//go:embed migration/*.sql
var migrationFiles embed.FS

// Migrations is the migration line of an NGO's work records and places: its tables, in the Postgres
// schema "ngo".
var Migrations = pgmigrate.Line{Schema: "ngo", FS: must(fs.Sub(migrationFiles, "migration"))}

func must(f fs.FS, err error) fs.FS {
	if err != nil {
		panic(err)
	}
	return f
}
