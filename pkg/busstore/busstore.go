// Package busstore is the bus's part of a node's store: the tables of the
// delivery machinery, in Postgres schema bus, made by their own migration
// line. An application applies it with its own lines:
//
//	pgmigrate.Up(ctx, url, busstore.Migrations, core, kind)
//
// The tables, and the package that owns each (the only code that reads or
// writes it):
//
//   - bus.outbox: every event the node sent (package outbox; its receipt
//     columns are recorded by package receipt);
//   - bus.outbox_published: where and when each event was first published
//     (outbox's relay);
//   - bus.outbox_awaiting: the events still waiting for their receipt
//     (outbox; receipt takes them off);
//   - bus.relay_cursor: how far, in commit order, the relay has published
//     (outbox's relay);
//   - bus.inbox: every event the node received, applied or rejected
//     (package inbox);
//   - bus.dead_letter: events JetStream stopped redelivering (inbox).
//
// Its first migration adopts a store made before the bus had a line of its
// own, whose tables are in schema public: it moves them into bus with
// their rows. The legacy version table public.goose_db_version is the
// application's to remove.
package busstore

import (
	"github.com/refbus/refbus/pkg/internal/busdb"
	"github.com/refbus/refbus/pkg/pgmigrate"
)

// Schema is the Postgres schema of the bus's tables.
const Schema = "bus"

// Migrations is the bus's migration line.
var Migrations = pgmigrate.Line{Schema: Schema, FS: busdb.Migrations}
