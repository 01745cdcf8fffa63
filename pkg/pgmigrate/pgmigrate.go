// Package pgmigrate applies the migration lines of a store: each owner of
// tables (the bus, the application's core, a kind's own records) keeps its
// goose migrations beside its code, in a Postgres schema of its own with a
// version table of its own, so that no owner's versions collide with
// another's.
package pgmigrate

import (
	"context"
	"database/sql"
	"fmt"
	"io/fs"

	"github.com/jackc/pgx/v5"
	_ "github.com/jackc/pgx/v5/stdlib" // registers the pgx driver for database/sql
	"github.com/pressly/goose/v3"
	"github.com/pressly/goose/v3/lock"
)

// Line is one owner's migrations in a store.
type Line struct {
	// Schema is the Postgres schema of the owner's tables; its goose
	// version table is <Schema>.goose_db_version.
	Schema string
	// FS holds goose SQL migrations (*.sql at its root).
	FS fs.FS
}

// Up applies the pending migrations of each line, in the order given,
// under one Postgres session advisory lock, so that services starting
// together migrate once. It creates each line's schema first if missing.
// A Line with a nil FS is skipped.
func Up(ctx context.Context, url string, lines ...Line) error {
	db, err := sql.Open("pgx", url)
	if err != nil {
		return fmt.Errorf("migrate: open: %w", err)
	}
	defer db.Close()
	// The lock is taken once, on a connection of its own, around every
	// line: a provider that took it again on its own connection would
	// wait for itself.
	conn, err := db.Conn(ctx)
	if err != nil {
		return fmt.Errorf("migrate: connect: %w", err)
	}
	defer conn.Close()
	locker, err := lock.NewPostgresSessionLocker(lock.WithLockTimeout(1, 300))
	if err != nil {
		return fmt.Errorf("migrate: locker: %w", err)
	}
	if err := locker.SessionLock(ctx, conn); err != nil {
		return fmt.Errorf("migrate: lock: %w", err)
	}
	defer func() { _ = locker.SessionUnlock(context.WithoutCancel(ctx), conn) }()

	for _, l := range lines {
		if l.FS == nil {
			continue
		}
		if l.Schema == "" {
			return fmt.Errorf("migrate: a line has no schema")
		}
		if _, err := conn.ExecContext(ctx, "CREATE SCHEMA IF NOT EXISTS "+pgx.Identifier{l.Schema}.Sanitize()); err != nil {
			return fmt.Errorf("migrate %s: create schema: %w", l.Schema, err)
		}
		p, err := goose.NewProvider(goose.DialectPostgres, db, l.FS,
			goose.WithTableName(l.Schema+".goose_db_version"),
			goose.WithDisableGlobalRegistry(true))
		if err != nil {
			return fmt.Errorf("migrate %s: %w", l.Schema, err)
		}
		if _, err := p.Up(ctx); err != nil {
			return fmt.Errorf("migrate %s: %w", l.Schema, err)
		}
	}
	return nil
}

// Dir is the line, in schema, of the migrations in directory dir of fsys
// (an embed.FS holding dir/*.sql, say). A dir fsys does not hold is the
// caller's bug: Dir panics.
func Dir(schema string, fsys fs.FS, dir string) Line {
	sub, err := fs.Sub(fsys, dir)
	if err != nil {
		panic(fmt.Sprintf("pgmigrate: migrations of %s in %s: %v", schema, dir, err))
	}
	return Line{Schema: schema, FS: sub}
}
