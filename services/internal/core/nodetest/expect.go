package nodetest

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"mime"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/refbus/refbus/schemas"
)

// What the tests of the kinds and of the chains of help expect of nodes,
// kept here once rather than in each kind's tests.

// Problem is an RFC 9457 problem as the API writes it.
type Problem struct {
	Type   string `json:"type"`
	Title  string `json:"title"`
	Status int    `json:"status"`
	Detail string `json:"detail"`
	Errors []struct {
		Message  string `json:"message"`
		Location string `json:"location"`
	} `json:"errors"`
}

// Text is everything in the problem a person reads: the detail and each
// error with where it is.
func (p Problem) Text() string {
	parts := []string{p.Detail}
	for _, e := range p.Errors {
		parts = append(parts, e.Location+": "+e.Message)
	}
	return strings.Join(parts, " | ")
}

// WantProblem fails the test unless the answer is a problem document with
// status want whose detail or errors mention each of text.
func WantProblem(t testing.TB, status int, body string, h http.Header, want int, text ...string) Problem {
	t.Helper()
	if status != want {
		t.Errorf("status %d, want %d; body %s", status, want, body)
	}
	ct := h.Get("Content-Type")
	if mt, _, err := mime.ParseMediaType(ct); err != nil || mt != "application/problem+json" {
		t.Errorf("Content-Type %q, want application/problem+json; body %s", ct, body)
		return Problem{}
	}
	p := Decode[Problem](t, body)
	if p.Status != status {
		t.Errorf(`problem "status" is %d, the HTTP status is %d`, p.Status, status)
	}
	if strings.TrimSpace(p.Title) == "" || strings.TrimSpace(p.Text()) == "" {
		t.Errorf("problem without a title, or without a detail or errors a person can read: %s", body)
	}
	for _, w := range text {
		if !strings.Contains(p.Text(), w) {
			t.Errorf("problem does not tell the caller about %q: %q", w, p.Text())
		}
	}
	return p
}

// Refused sends a request to node name and fails the test unless it is
// answered with a problem of status want mentioning each of text.
func (n *Network) Refused(name, method, path, body string, want int, text ...string) Problem {
	n.T.Helper()
	status, res, h := n.Do(name, method, path, body)
	return WantProblem(n.T, status, res, h, want, text...)
}

// StoreTables are the tables every node's store holds whatever its kind:
// the bus's (package pkg/busstore) and the core's (package coredb).
var StoreTables = []string{
	"bus.dead_letter", "bus.goose_db_version", "bus.inbox", "bus.outbox", "bus.outbox_awaiting", "bus.outbox_published", "bus.relay_cursor",
	"core.address_disclosure", "core.agency_key", "core.case_access", "core.consent", "core.epoch_key", "core.escalation", "core.goose_db_version",
	"core.referral", "core.referral_count", "core.referral_count_delta", "core.referral_history", "core.sla_timer", "core.web_session", "core.web_user",
}

// WantTables fails the test unless node name's store holds exactly the
// bus's and the core's tables (StoreTables) and own, its kind's.
func (n *Network) WantTables(name string, own ...string) {
	n.T.Helper()
	want := slices.Sorted(slices.Values(append(slices.Clone(StoreTables), own...)))
	if got := n.Tables(name); !slices.Equal(got, want) {
		n.T.Errorf("%s's store holds the tables\n %s\nwant\n %s", name, strings.Join(got, " "), strings.Join(want, " "))
	}
}

// Rows are the rows of one table of node name's store (schema.table), each
// as text, in no order.
func (n *Network) Rows(name, table string) []string {
	n.T.Helper()
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, n.DB(name))
	if err != nil {
		n.T.Fatal(err)
	}
	defer conn.Close(ctx)
	schema, tbl, _ := strings.Cut(table, ".")
	rows, err := conn.Query(ctx, `SELECT t::text FROM `+pgx.Identifier{schema, tbl}.Sanitize()+` t`)
	if err != nil {
		n.T.Fatalf("read %s of %s: %v", table, name, err)
	}
	out, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		n.T.Fatalf("read %s of %s: %v", table, name, err)
	}
	return out
}

// WantRows fails the test unless the table (schema.table) of node name's
// store holds want rows, one of which mentions each of subs; it returns
// the rows, each as text.
func (n *Network) WantRows(name, table string, want int, subs ...string) []string {
	n.T.Helper()
	rows := n.Rows(name, table)
	if len(rows) != want {
		n.T.Fatalf("%s of %s holds %d rows, want %d: %q", table, name, len(rows), want, rows)
	}
	if len(subs) == 0 {
		return rows
	}
	for _, row := range rows {
		if containsAll(row, subs...) {
			return rows
		}
	}
	n.T.Fatalf("no row of %s of %s mentions each of %q: %q", table, name, subs, rows)
	return nil
}

func containsAll(s string, subs ...string) bool {
	for _, sub := range subs {
		if !strings.Contains(s, sub) {
			return false
		}
	}
	return true
}

// sampleWork is one valid record of each kind of work record, as JSON.
func sampleWork(record string) string {
	switch record {
	case "screening":
		return `{"kind":"pediatric","result":"normal"}`
	case "assessment":
		return `{"conclusion":"no delay","needs_support":false}`
	case "learning_plan":
		return fmt.Sprintf(`{"programme":"p","goals":"g","starts_on":%q,"review_on":%q}`, Date(0), Date(3))
	case "benefit_decision":
		return `{"benefit":"child_allowance","decision":"granted","monthly_kzt":1000}`
	case "placement":
		return fmt.Sprintf(`{"bed":"1","address":"x","ends_on":%q}`, Date(1))
	}
	return ""
}

// WantOwnWorkOnly fails the test unless node name, of the kind kindName,
// records the work records own and no other: told any other record of
// schemas.Work with the completion of referral id, one it received, or
// with a new referral to organization to for service, it answers 422 naming the
// records it keeps, and writes nothing.
func (n *Network) WantOwnWorkOnly(name, kindName string, own []string, id uuid.UUID, to, service string) {
	n.T.Helper()
	before, err := n.Referral(name, id)
	if err != nil {
		n.T.Fatal(err)
	}
	sent, err := n.App(name).Sent(context.Background(), "", 1000)
	if err != nil {
		n.T.Fatal(err)
	}
	records := "no work records"
	if len(own) > 0 {
		records = strings.Join(own, ", ")
	}
	foreign := 0
	for _, r := range schemas.WorkRecords() {
		if slices.Contains(own, r.Name) {
			continue
		}
		foreign++
		sample := sampleWork(r.Name)
		if sample == "" {
			n.T.Fatalf("nodetest has no sample of the work record %s: add one to sampleWork", r.Name)
		}
		want := fmt.Sprintf("a %s node does not record %s; it records %s", kindName, r.Name, records)
		work := fmt.Sprintf(`"work":{%q:%s}`, r.Name, sample)
		n.Refused(name, "POST", "/api/v1/referrals/"+id.String()+"/complete", `{"outcome":"done",`+work+`}`, 422, want)
		if r.Name == "placement" {
			continue // no new referral carries a placement, whatever the kind
		}
		body := fmt.Sprintf(`{"to_org":%q,"service":%q,"note":"n",%s}`, to, service, work)
		n.Refused(name, "POST", "/api/v1/referrals", n.Consented(name, body), 422, want)
	}
	if foreign == 0 {
		n.T.Fatalf("%s records every kind of work record: the check proves nothing", name)
	}
	after, err := n.Referral(name, id)
	if err != nil {
		n.T.Fatal(err)
	}
	if after.Status != before.Status || !jsonEqual(after.Work, before.Work) {
		n.T.Errorf("a refused move was written: before %+v, after %+v", before, after)
	}
	if now, err := n.App(name).Sent(context.Background(), "", 1000); err != nil || len(now) != len(sent) {
		n.T.Errorf("%s sent %d referrals before the refused ones and %d after (%v)", name, len(sent), len(now), err)
	}
}

func jsonEqual(a, b any) bool {
	x, _ := json.Marshal(a)
	y, _ := json.Marshal(b)
	return string(x) == string(y)
}

// Date is the day months from today (UTC), as the API writes dates.
func Date(months int) string { return time.Now().UTC().AddDate(0, months, 0).Format(time.DateOnly) }

// ShelterAddress is the confidential address of the test shelters.
const ShelterAddress = "Almaty, Zhetysu district, 14 Konaev street, flat 7"

// Placement is the body of a shelter's accept: bed, at ShelterAddress,
// for three months from today.
func Placement(bed string) string {
	return fmt.Sprintf(`{"work":{"placement":{"bed":%q,"address":%q,"ends_on":%q}}}`, bed, ShelterAddress, Date(3))
}

// WantSecretOnlyAt fails the test unless secret is held by the nodes at
// (it is in their stores: the other checks could fail) and by none of the
// nodes elsewhere once their consumers are idle: not in their stores, as
// text or hex, not in what their API shows (inbox, sent, case caseID,
// directory, rejections), not in an event addressed to them; and in clear
// text in no event on the stream.
func (n *Network) WantSecretOnlyAt(secret string, at, elsewhere []string, caseID uuid.UUID) {
	n.T.Helper()
	for _, name := range at {
		if !strings.Contains(n.StoreText(name), secret) {
			n.T.Fatalf("%q is not in %s's store: the checks that it is nowhere else would prove nothing", secret, name)
		}
	}
	if n.EventsTo("", secret) {
		n.T.Errorf("%q is in clear text on the stream", secret)
	}
	for _, name := range elsewhere {
		Eventually(n.T, 30*time.Second, n.ConsumerIdle(name))
		if s := n.StoreText(name); strings.Contains(s, secret) || strings.Contains(s, hex.EncodeToString([]byte(secret))) {
			n.T.Errorf("%q is in %s's store", secret, name)
		}
		for _, path := range []string{"/api/v1/inbox", "/api/v1/referrals", "/api/v1/cases/" + caseID.String(), "/api/v1/directory", "/api/v1/rejections"} {
			if _, body, _ := n.Do(name, "GET", path, ""); strings.Contains(body, secret) {
				n.T.Errorf("%q is in %s's %s", secret, name, path)
			}
		}
		if n.EventsTo(name, secret) {
			n.T.Errorf("%q is in an event addressed to %s", secret, name)
		}
	}
}
