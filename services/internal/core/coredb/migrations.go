package coredb

import (
	"embed"

	"github.com/refbus/refbus/pkg/pgmigrate"
)

//go:embed migration/*.sql
var migrationFiles embed.FS

// Migrations is the migration line of the core (what every kind of node keeps): its tables, in the
// Postgres schema "core".
var Migrations = pgmigrate.Dir("core", migrationFiles, "migration")
