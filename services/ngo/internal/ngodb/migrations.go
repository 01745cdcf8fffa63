package ngodb

import (
	"embed"

	"github.com/refbus/refbus/pkg/pgmigrate"
)

//go:embed migration/*.sql
var migrationFiles embed.FS

// Migrations is the migration line of an NGO's work records and places: its tables, in the
// Postgres schema "ngo".
var Migrations = pgmigrate.Dir("ngo", migrationFiles, "migration")
