package core

import (
	"context"
	"fmt"
	"log/slog"

	"github.com/jackc/pgx/v5"
)

// Stores made before the migration lines were split kept every table of
// every kind in "public", migrated by one goose line (version table
// public.goose_db_version). Each line adopts its own tables (its first
// migration moves them to its schema); what stays in "public" afterwards
// is the other kinds' work tables, which such a store made for every
// node. dropLegacy drops those that are empty, and the old version table,
// and keeps, with a warning, any that holds rows.
var legacyTables = []string{"learning_plan", "assessment", "screening", "benefit_decision", "placement", "capacity"}

func dropLegacy(ctx context.Context, url string, log *slog.Logger) error {
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		return fmt.Errorf("adopt legacy store: %w", err)
	}
	defer conn.Close(context.WithoutCancel(ctx))
	var legacy bool
	if err := conn.QueryRow(ctx, `SELECT to_regclass('public.goose_db_version') IS NOT NULL`).Scan(&legacy); err != nil || !legacy {
		return err
	}
	for _, t := range legacyTables {
		name := pgx.Identifier{"public", t}.Sanitize()
		var exists bool
		if err := conn.QueryRow(ctx, `SELECT to_regclass($1) IS NOT NULL`, "public."+t).Scan(&exists); err != nil {
			return fmt.Errorf("adopt legacy store: %w", err)
		}
		if !exists {
			continue
		}
		var rows int64
		if err := conn.QueryRow(ctx, `SELECT count(*) FROM `+name).Scan(&rows); err != nil {
			return fmt.Errorf("adopt legacy store: count %s: %w", name, err)
		}
		if rows > 0 {
			log.Warn("a table of another kind holds rows in this store: left in place in schema public", "table", t, "rows", rows)
			continue
		}
		if _, err := conn.Exec(ctx, `DROP TABLE `+name); err != nil {
			log.Warn("an empty table of another kind could not be dropped", "table", t, "err", err)
		}
	}
	if _, err := conn.Exec(ctx, `DROP TABLE IF EXISTS public.goose_db_version`); err != nil {
		return fmt.Errorf("adopt legacy store: drop the old version table: %w", err)
	}
	log.Info("adopted a store made by the single migration line")
	return nil
}
