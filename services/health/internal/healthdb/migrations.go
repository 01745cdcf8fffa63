package healthdb

import (
	"embed"
	"io/fs"

	"github.com/refbus/refbus/pkg/pgmigrate"
)

//go:embed migration/*.sql
var migrationFiles embed.FS

// Migrations is the migration line of health's work records: its tables, in the Postgres
// schema "health".
var Migrations = pgmigrate.Line{Schema: "health", FS: must(fs.Sub(migrationFiles, "migration"))}

func must(f fs.FS, err error) fs.FS {
	if err != nil {
		panic(err)
	}
	return f
}
