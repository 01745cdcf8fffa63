package educationdb

import (
	"embed"

	"github.com/refbus/refbus/pkg/pgmigrate"
)

//go:embed migration/*.sql
var migrationFiles embed.FS

// Migrations is the migration line of education's work records: its tables, in the
// Postgres schema "education".
var Migrations = pgmigrate.Dir("education", migrationFiles, "migration")
