package app

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
)

// Postgres keeps a row's old versions in the table's files until vacuum
// reuses their space: after an UPDATE that empties what a referral said,
// or destroys a key, the old bytes are still on disk. compact rewrites
// the tables that hold what the core and the kind know of people (VACUUM
// FULL: a new file, the old one unlinked), so no dump, backup or copy of
// the store's files made after it holds them. It takes an exclusive lock
// on each table for the rewrite: the node pauses for it, which is why it
// runs only after an erasure, a revocation or a key's destruction. The
// write-ahead log keeps them until its segments are recycled.
func (a *App) compact(ctx context.Context) error {
	rows, err := a.pool.Query(ctx, `SELECT format('%I.%I', schemaname, tablename) FROM pg_tables
		WHERE schemaname = ANY($1) ORDER BY 1`, []string{"core", a.kind.Name()})
	if err != nil {
		return fmt.Errorf("list tables to compact: %w", err)
	}
	tables, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return fmt.Errorf("list tables to compact: %w", err)
	}
	start := time.Now()
	if _, err := a.pool.Exec(ctx, "VACUUM (FULL) "+strings.Join(tables, ", ")); err != nil {
		return fmt.Errorf("compact %s: %w", strings.Join(tables, ", "), err)
	}
	a.log.Info("store compacted after an erasure", "tables", len(tables), "took", time.Since(start))
	return nil
}

// compactSoon asks for a compaction after the transaction that erased
// something here commits (the inbox's, which cannot wait for it).
func (a *App) compactSoon() {
	select {
	case a.compactDue <- struct{}{}:
	default:
	}
}

// compactor compacts the store once a second at most while compactions
// are asked for.
func (a *App) compactor(ctx context.Context) error {
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-a.compactDue:
		}
		// Let the asking transaction commit first.
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(time.Second):
		}
		if err := a.compact(ctx); err != nil && ctx.Err() == nil {
			a.log.Warn("compact", "err", err)
			a.compactSoon() // try again
		}
	}
}
