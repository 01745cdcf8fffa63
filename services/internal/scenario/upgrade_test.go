package scenario_test

import (
	"context"
	"database/sql"
	"fmt"
	"os"
	"slices"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	_ "github.com/jackc/pgx/v5/stdlib"
	"github.com/pressly/goose/v3"

	"github.com/refbus/refbus/pkg/pgtest"
	"github.com/refbus/refbus/services/health"
	"github.com/refbus/refbus/services/internal/core/nodetest"
	"github.com/refbus/refbus/services/ngo"
)

// legacyLine is the single migration line of the versions before the
// owners had lines of their own (sql/agency/migrations 00001-00019). The
// bus's tests keep the copy; the store it made is the one to upgrade.
const legacyLine = "../../../pkg/busstore/testdata/legacy"

// legacy migrates a store as those versions did: everything in public.
func legacy(ctx context.Context, url string) error {
	db, err := sql.Open("pgx", url)
	if err != nil {
		return err
	}
	defer db.Close()
	p, err := goose.NewProvider(goose.DialectPostgres, db, os.DirFS(legacyLine), goose.WithDisableGlobalRegistry(true))
	if err != nil {
		return err
	}
	_, err = p.Up(ctx)
	return err
}

// execAll runs statements on the store at url.
func execAll(t *testing.T, url string, stmts ...string) {
	t.Helper()
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	for _, s := range stmts {
		if _, err := conn.Exec(ctx, s); err != nil {
			t.Fatalf("%s: %v", s, err)
		}
	}
}

// rowCounts counts the rows of each table of the store at url, by table
// name whatever its schema, with the names of the schemas it is in.
func rowCounts(t *testing.T, url string) map[string]string {
	t.Helper()
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	rows, err := conn.Query(ctx, `SELECT schemaname, tablename FROM pg_tables
		WHERE schemaname NOT IN ('pg_catalog', 'information_schema') AND tablename <> 'goose_db_version'`)
	if err != nil {
		t.Fatal(err)
	}
	type table struct{ schema, name string }
	tables, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (table, error) {
		var x table
		return x, r.Scan(&x.schema, &x.name)
	})
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]string{}
	for _, x := range tables {
		var n int64
		if err := conn.QueryRow(ctx, `SELECT count(*) FROM `+pgx.Identifier{x.schema, x.name}.Sanitize()).Scan(&n); err != nil {
			t.Fatal(err)
		}
		if n > 0 {
			out[x.name] = fmt.Sprint(n)
		}
	}
	return out
}

// A store made by the versions with one migration line for everything
// upgrades in place when the new nodes start on it: each line adopts its
// tables with their rows, the other kinds' empty tables go, and the work
// goes on where it stopped: the shelter completes a referral accepted
// before the upgrade (the bed is freed, the sender hears of it), and a new
// referral crosses after the relay's old cursor.
func TestLegacyStoreUpgradesInPlace(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	healthURL := pgtest.New(t, "legacy", legacy)
	ngoURL := pgtest.New(t, "legacy", legacy)

	// A referral from health to the shelter, accepted there with a bed,
	// as the old services left it in both stores.
	ref, caseID, consent := uuid.New(), uuid.New(), uuid.New()
	requested, accepted := uuid.New(), uuid.New()
	at := time.Now().UTC().Add(-time.Hour).Format(time.RFC3339)
	ends := time.Now().UTC().AddDate(0, 2, 0).Format(time.DateOnly)
	work := `{"placement":{"bed":"7","address":"Almaty, 14 Konaev street","starts_on":"` + time.Now().UTC().Format(time.DateOnly) + `","ends_on":"` + ends + `"}}`
	common := []string{
		`INSERT INTO web_user (username, display_name, role, password_hash) VALUES ('old-caseworker', 'Old', 'caseworker', 'x')`,
		`INSERT INTO web_session (token_hash, username, role, expires_at) VALUES ('\x01', 'old-caseworker', 'caseworker', now() + interval '1 hour')`,
		`INSERT INTO dead_letter (stream_seq, subject, deliveries) VALUES (99, 'refbus.x.y.referral.requested', 20)`,
	}
	execAll(t, healthURL, append(common,
		`INSERT INTO agency_key (agency, private_key) VALUES ('health', decode(repeat('11', 32), 'hex'))`,
		fmt.Sprintf(`INSERT INTO consent (id, given_by, to_agency, purpose, data_categories, expires_at) VALUES ('%s', 'the mother', 'ngo', 'safe place', '{summary,shelter}', now() + interval '30 days')`, consent),
		fmt.Sprintf(`INSERT INTO referral (id, case_id, from_agency, to_agency, service, note, status, seq_out, seq_in, consent_id, consent_purpose, consent_categories, consent_expires_at, received_at, work, created_at)
			VALUES ('%s', '%s', 'health', 'ngo', 'crisis_shelter', 'mother and two children', 'accepted', 1, 1, '%s', 'safe place', '{summary,shelter}', now() + interval '30 days', '%s', '%s', '%s')`, ref, caseID, consent, at, work, at),
		fmt.Sprintf(`INSERT INTO referral_history (referral_id, case_id, agency, move, status) VALUES ('%s', '%s', 'ngo', 'accept', 'accepted')`, ref, caseID),
		fmt.Sprintf(`INSERT INTO sla_timer (referral_id, kind, due_at) VALUES ('%s', 'complete', now() + interval '180 days')`, ref),
		fmt.Sprintf(`INSERT INTO outbox (event_id, event_type, subject, msg_id, payload, wants_receipt, receipted_at, receipt_outcome)
			VALUES ('%s', 'org.refbus.referral.requested.v1', 'refbus.health.ngo.referral.requested', '/agencies/health#%s', '{}', true, now(), 'applied')`, requested, requested),
		`INSERT INTO outbox_published (seq, stream_seq) SELECT seq, 1 FROM outbox`,
		`UPDATE relay_cursor SET txid = o.txid, seq = o.seq FROM outbox o`,
		fmt.Sprintf(`INSERT INTO inbox (source, event_id, event_type, subject, stream_seq, outcome) VALUES ('/agencies/ngo', '%s', 'org.refbus.referral.accepted.v1', 'refbus.ngo.health.referral.accepted', 2, 'applied')`, accepted),
	)...)
	execAll(t, ngoURL, append(common,
		`INSERT INTO agency_key (agency, private_key) VALUES ('ngo', decode(repeat('22', 32), 'hex'))`,
		fmt.Sprintf(`INSERT INTO referral (id, case_id, from_agency, to_agency, service, note, status, seq_out, seq_in, consent_id, consent_purpose, consent_expires_at, received_at, work, created_at)
			VALUES ('%s', '%s', 'health', 'ngo', 'crisis_shelter', 'mother and two children', 'accepted', 1, 1, '%s', 'safe place', now() + interval '30 days', '%s', '%s', '%s')`, ref, caseID, consent, at, work, at),
		fmt.Sprintf(`INSERT INTO referral_history (referral_id, case_id, agency, move, status) VALUES ('%s', '%s', 'ngo', 'accept', 'accepted')`, ref, caseID),
		`INSERT INTO capacity (service, beds, used) VALUES ('crisis_shelter', 52, 1)`,
		fmt.Sprintf(`INSERT INTO placement (id, referral_id, case_id, service, bed, address, starts_on, ends_on) VALUES ('%s', '%s', '%s', 'crisis_shelter', '7', 'Almaty, 14 Konaev street', current_date, '%s')`, uuid.New(), ref, caseID, ends),
		fmt.Sprintf(`INSERT INTO inbox (source, event_id, event_type, subject, stream_seq, outcome) VALUES ('/agencies/health', '%s', 'org.refbus.referral.requested.v1', 'refbus.health.ngo.referral.requested', 1, 'applied')`, requested),
		fmt.Sprintf(`INSERT INTO outbox (event_id, event_type, subject, msg_id, payload, wants_receipt, receipted_at, receipt_outcome)
			VALUES ('%s', 'org.refbus.referral.accepted.v1', 'refbus.ngo.health.referral.accepted', '/agencies/ngo#%s', '{}', true, now(), 'applied')`, accepted, accepted),
		`INSERT INTO outbox_published (seq, stream_seq) SELECT seq, 2 FROM outbox`,
		`UPDATE relay_cursor SET txid = o.txid, seq = o.seq FROM outbox o`,
	)...)
	before := map[string]map[string]string{"health": rowCounts(t, healthURL), "ngo": rowCounts(t, ngoURL)}

	n := nodetest.New(t)
	n.SetDB("health", healthURL)
	n.SetDB("ngo", ngoURL)
	n.Start("health", health.New(), nil)
	n.Start("ngo", ngo.New(), nil)

	// Every row is still there, in its owner's schema; public holds
	// nothing any more.
	for node, url := range map[string]string{"health": healthURL, "ngo": ngoURL} {
		after := rowCounts(t, url)
		for table, rows := range before[node] {
			if after[table] != rows && !(table == "capacity" && node == "ngo") {
				t.Errorf("%s: table %s had %s rows before the upgrade, has %s after", node, table, rows, after[table])
			}
		}
		var public []string
		for _, tb := range n.Tables(node) {
			if len(tb) > 7 && tb[:7] == "public." {
				public = append(public, tb)
			}
		}
		if len(public) > 0 {
			t.Errorf("%s: tables left in public after the upgrade: %v", node, public)
		}
	}
	if tables := n.Tables("health"); slices.Contains(tables, "ngo.placement") || !slices.Contains(tables, "health.screening") {
		t.Errorf("the health store holds %v", tables)
	}

	// The work goes on: the shelter completes the old referral; the bed
	// it held is freed, and health hears of it.
	got, err := n.Referral("ngo", ref)
	if err != nil || got.Status != "accepted" || got.Work == nil || got.Work.Placement == nil || got.Work.Placement.Address != "Almaty, 14 Konaev street" {
		t.Fatalf("the shelter's referral after the upgrade: %+v %v", got, err)
	}
	n.WantFreeBeds("health", "ngo", "crisis_shelter", 51)
	n.Move("ngo", ref, "start", "")
	n.Move("ngo", ref, "complete", `{"outcome":"the family moved to a flat of its own"}`)
	nodetest.Eventually(t, 15*time.Second, n.WantStatus("health", ref, "completed"))
	n.WantFreeBeds("health", "ngo", "crisis_shelter", 52)
	if c := n.Case("health", caseID); len(c.Timeline) != 5 {
		t.Errorf("health's timeline of the old case after the upgrade has %d steps, want 5 (request, receive, accept, start, complete): %+v", len(c.Timeline), c.Timeline)
	}

	// A new referral crosses after the relay's old cursor, and comes back
	// received.
	r := n.Refer("health", "ngo", "legal_help", "", "")
	n.Both(r, "received")
	if _, err := n.App("health").UserByName(ctx, "old-caseworker"); err != nil {
		t.Errorf("the old store's caseworker is gone: %v", err)
	}
}
