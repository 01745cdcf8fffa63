package educationdb

import (
	"embed"
	"io/fs"

	"github.com/refbus/refbus/pkg/pgmigrate"
)

//go:embed migration/*.sql
var migrationFiles embed.FS

// Migrations is the migration line of education's work records: its tables, in the Postgres
// schema "education".
var Migrations = pgmigrate.Line{Schema: "education", FS: must(fs.Sub(migrationFiles, "migration"))}

func must(f fs.FS, err error) fs.FS {
	if err != nil {
		panic(err)
	}
	return f
}
