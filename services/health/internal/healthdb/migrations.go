package healthdb

import (
	"embed"

	"github.com/refbus/refbus/pkg/pgmigrate"
)

//go:embed migration/*.sql
var migrationFiles embed.FS

// Migrations is the migration line of health's work records: its tables, in the
// Postgres schema "health".
var Migrations = pgmigrate.Dir("health", migrationFiles, "migration")
