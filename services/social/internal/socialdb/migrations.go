package socialdb

import (
	"embed"

	"github.com/refbus/refbus/pkg/pgmigrate"
)

//go:embed migration/*.sql
var migrationFiles embed.FS

// Migrations is the migration line of social protection's work records: its tables, in the
// Postgres schema "social".
var Migrations = pgmigrate.Dir("social", migrationFiles, "migration")
