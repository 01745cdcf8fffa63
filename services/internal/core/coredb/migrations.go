package coredb

import (
	"embed"
	"io/fs"

	"github.com/refbus/refbus/pkg/pgmigrate"
)

//go:embed migration/*.sql
var migrationFiles embed.FS

// Migrations is the migration line of the core (what every kind of node keeps): its tables, in the Postgres
// schema "core".
var Migrations = pgmigrate.Line{Schema: "core", FS: must(fs.Sub(migrationFiles, "migration"))}

func must(f fs.FS, err error) fs.FS {
	if err != nil {
		panic(err)
	}
	return f
}
