package web_test

import (
	"context"
	"encoding/csv"
	"fmt"
	"html"
	"net/http"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/refbus/refbus/pkg/poll"
	"github.com/refbus/refbus/pkg/referral"
	"github.com/refbus/refbus/services/internal/core"
	"github.com/refbus/refbus/services/internal/core/app"
	"github.com/refbus/refbus/services/internal/core/directory"
	"github.com/refbus/refbus/services/internal/core/web"
)

// dashNetwork is the dashboard tests' network: the social node hosts two
// family support centres (almaly, auezov), which refer families to the
// ngo. Almaly sends legal help twice (one accepted 2 hours after its
// receipt and completed 26 hours after it, one accepted after 4 hours and
// still open) and psychological help once (declined for no capacity);
// Auezov sends a mother's home (open, overdue: its deadline to accept is
// a nanosecond) and psychological help (cancelled).
type dashNetwork struct {
	*network
	completed, accepted, declined, overdue, cancelled app.Referral
}

func newDashNetwork(t *testing.T) *dashNetwork {
	t.Helper()
	offers := func(names ...string) []directory.Offer {
		var out []directory.Offer
		for _, s := range names {
			out = append(out, directory.Offer{Name: s, Title: s, Eligibility: "families", Languages: []string{"ru"}, Area: "Almaty"})
		}
		return out
	}
	n := newNetworkWith(t, nil, func(c *core.Config) {
		if c.Node == "social" {
			c.Organizations = []directory.Organization{
				{ID: almaly, Name: "Family support centre, Almaly district", Services: offers("family_support")},
				{ID: auezov, Name: "Family support centre, Auezov district", Services: offers("family_support")},
			}
		}
		c.SLAs = map[string]app.SLA{"mothers_home": {Accept: time.Nanosecond}, "": {Accept: time.Hour, Complete: 30 * 24 * time.Hour}}
		c.SLATick = 50 * time.Millisecond
	}, "social", "ngo")
	ctx := context.Background()
	for _, u := range []web.User{
		{Username: "almaly-supervisor", Role: web.RoleSupervisor, Org: almaly, Password: password},
		{Username: "auezov-supervisor", Role: web.RoleSupervisor, Org: auezov, Password: password},
	} {
		if err := web.SeedUser(ctx, n.App("social"), u); err != nil {
			t.Fatal(err)
		}
	}
	for _, u := range []string{"social-supervisor", "ngo-supervisor", "almaly-supervisor", "ngo-auditor"} {
		node := "social"
		if strings.HasPrefix(u, "ngo") {
			node = "ngo"
		}
		if err := n.App(node).SetLanguage(ctx, u, "en"); err != nil {
			t.Fatal(err)
		}
	}

	refer := func(from, service string) app.Referral {
		t.Helper()
		consent := n.Consent("social", "ngo")
		r, err := n.App("social").CreateReferral(ctx, app.NewReferral{FromOrg: from, ToOrg: "ngo", Service: service, Note: "a family", ConsentID: consent})
		if err != nil {
			t.Fatal(err)
		}
		n.Both(r, "received")
		return r
	}
	d := &dashNetwork{network: n}
	d.completed = refer(almaly, "legal_help")
	d.accepted = refer(almaly, "legal_help")
	d.declined = refer(almaly, "psychological_help")
	d.overdue = refer(auezov, "mothers_home")
	d.cancelled = refer(auezov, "psychological_help")

	move := func(node string, r app.Referral, mv referral.Move, in app.MoveInput) {
		t.Helper()
		if _, err := n.App(node).Move(ctx, r.ID, mv, in); err != nil {
			t.Fatalf("%s %s %s: %v", node, mv, r.ID, err)
		}
	}
	move("ngo", d.completed, referral.Accept, app.MoveInput{})
	move("ngo", d.completed, referral.Start, app.MoveInput{})
	move("ngo", d.completed, referral.Complete, app.MoveInput{Outcome: "custody settled"})
	move("ngo", d.accepted, referral.Accept, app.MoveInput{})
	move("ngo", d.declined, referral.Decline, app.MoveInput{ReasonCode: string(referral.NoCapacity), Reason: "no psychologist this month"})
	move("social", d.cancelled, referral.Cancel, app.MoveInput{Reason: "the family moved"})
	n.Both(d.completed, "completed")
	n.Both(d.accepted, "accepted")
	n.Both(d.declined, "declined")
	n.Both(d.cancelled, "cancelled")
	poll.Until(t, 20*time.Second, func() error {
		for _, node := range []string{"social", "ngo"} {
			if r, err := n.Referral(node, d.overdue.ID); err != nil || !r.Overdue {
				return fmt.Errorf("%s: the mother's home is not overdue yet (%v)", node, err)
			}
		}
		return nil
	})

	// The moves were made a moment after the receipts; on both stores,
	// they are put at known times after them.
	for _, node := range []string{"social", "ngo"} {
		conn, err := pgx.Connect(ctx, n.DB(node))
		if err != nil {
			t.Fatal(err)
		}
		for _, c := range []struct {
			r     app.Referral
			move  string
			after time.Duration
		}{{d.completed, "accept", 2 * time.Hour}, {d.completed, "complete", 26 * time.Hour}, {d.accepted, "accept", 4 * time.Hour}} {
			tag, err := conn.Exec(ctx, `UPDATE core.referral_history h SET at = r.received_at + $3::interval
				FROM core.referral r WHERE r.id = h.referral_id AND h.referral_id = $1 AND h.move = $2`, c.r.ID, c.move, c.after.String())
			if err != nil || tag.RowsAffected() != 1 {
				t.Fatalf("%s: put the %s of %s at +%v: %v, %d rows", node, c.move, c.r.ID, c.after, err, tag.RowsAffected())
			}
		}
		conn.Close(ctx)
	}
	return d
}

// figures reads the dashboard's CSV as client c: value by
// "figure direction organization service week measure".
func figures(t *testing.T, c *client, query string) map[string]string {
	t.Helper()
	res, body := c.get("/ui/dashboard.csv" + query)
	wantStatus(t, res, http.StatusOK)
	if ct := res.Header.Get("Content-Type"); ct != "text/csv; charset=utf-8" {
		t.Fatalf("the CSV comes as %q", ct)
	}
	if cd := res.Header.Get("Content-Disposition"); !regexp.MustCompile(`^attachment; filename="?refbus-dashboard-[a-z0-9-]+\.csv"?$`).MatchString(cd) {
		t.Fatalf("Content-Disposition %q", cd)
	}
	recs, err := csv.NewReader(strings.NewReader(body)).ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	if len(recs) == 0 || strings.Join(recs[0], ",") != "figure,direction,organization,service,week,measure,value" {
		t.Fatalf("CSV header %v", recs)
	}
	out := map[string]string{}
	for _, r := range recs[1:] {
		out[strings.Join(r[:6], " ")] = r[6]
	}
	return out
}

// wantFigures fails unless got has each of want's figures.
func wantFigures(t *testing.T, who string, got map[string]string, want map[string]string) {
	t.Helper()
	for k, v := range want {
		if got[k] != v {
			t.Errorf("%s: %q = %q, want %q", who, k, got[k], v)
		}
	}
}

// thisMonday is the Monday of this week in the UI's time zone, as the
// weeks' figures name it.
func thisMonday() string {
	loc, _ := time.LoadLocation("Asia/Almaty")
	now := time.Now().In(loc)
	return now.AddDate(0, 0, -((int(now.Weekday()) + 6) % 7)).Format(time.DateOnly)
}

// The dashboard's figures, on the page and in the CSV, for a known set of
// referrals: open and overdue by organization, the median and 90th
// percentile of the times to accept and to complete, outcomes by service
// with the reasons of the declined, referrals by week.
func TestDashboardFigures(t *testing.T) {
	t.Parallel()
	n := newDashNetwork(t)
	week := thisMonday()

	// The receiver: every referral is incoming, to its one organization.
	sup := n.signIn("ngo", "ngo-supervisor")
	wantFigures(t, "ngo", figures(t, sup, ""), map[string]string{
		"organizations in ngo   open":                           "2",
		"organizations in ngo   overdue":                        "1",
		"organizations out ngo   open":                          "0",
		"times in  legal_help  accepted":                        "2",
		"times in  legal_help  accept_median_hours":             "3.00",
		"times in  legal_help  accept_p90_hours":                "3.80",
		"times in  legal_help  completed":                       "1",
		"times in  legal_help  complete_median_hours":           "26.00",
		"times in  legal_help  complete_p90_hours":              "26.00",
		"outcomes in  legal_help  total":                        "2",
		"outcomes in  legal_help  completed":                    "1",
		"outcomes in  legal_help  open":                         "1",
		"outcomes in  psychological_help  total":                "2",
		"outcomes in  psychological_help  declined":             "1",
		"outcomes in  psychological_help  declined:no_capacity": "1",
		"outcomes in  psychological_help  cancelled":            "1",
		"outcomes in  psychological_help  open":                 "0",
		"outcomes in  mothers_home  open":                       "1",
		"weeks in   " + week + " referrals":                     "5",
		"weeks out   " + week + " referrals":                    "0",
	})

	res, body := sup.get("/ui/dashboard")
	wantStatus(t, res, http.StatusOK)
	wantContains(t, body, `aria-current="page">Dashboard<`,
		// Charts: images with a title, and the figures in tables.
		`<svg class="chart"`, `role="img" aria-labelledby="chart-overdue-title chart-overdue-desc"`, `<title id="chart-weeks-title">Referrals by week</title>`,
		`<tr data-org="ngo">`, `data-fig="in_open">2<`, `data-fig="in_overdue">1<`,
		`<tr data-times="in/legal_help">`, `data-fig="accept_median">3 h<`, `data-fig="accept_p90">3 h 48 min<`, `data-fig="complete_median">1 d 2 h<`,
		`<tr data-outcomes="in/psychological_help">`, `data-fig="declined">1 <span class="why">(No capacity (no free place) 1)</span><`,
		`<tr data-week="`+week+`">`)
	if strings.Contains(body, ` style=`) || strings.Contains(body, `<style`) {
		t.Error("the dashboard has inline style, which the CSP blocks")
	}
	// Without the period's weeks, the default is the last 12.
	if got := strings.Count(body, `<tr data-week=`); got != 12 {
		t.Errorf("the default period has %d weeks, want 12", got)
	}
	// The CSV link carries the page's filter, and works.
	m := regexp.MustCompile(`id="dash-csv" href="([^"]+)"`).FindStringSubmatch(body)
	if m == nil || !strings.HasPrefix(m[1], "/ui/dashboard.csv?") || !strings.Contains(m[1], "from=") {
		t.Fatalf("no CSV link with the filter: %v", m)
	}
	figures(t, sup, strings.TrimPrefix(html.UnescapeString(m[1]), "/ui/dashboard.csv"))

	// The sender: every referral is outgoing; the node's supervisor sees
	// both centres, and filters by one.
	all := n.signIn("social", "social-supervisor")
	wantFigures(t, "social", figures(t, all, ""), map[string]string{
		"organizations out " + almaly + "   open":    "1",
		"organizations out " + almaly + "   overdue": "0",
		"organizations out " + auezov + "   open":    "1",
		"organizations out " + auezov + "   overdue": "1",
		"times out  legal_help  accept_median_hours": "3.00",
		"outcomes out  psychological_help  total":    "2",
		"weeks out   " + week + " referrals":         "5",
	})
	f := figures(t, all, "?org="+auezov)
	wantFigures(t, "social, Auezov", f, map[string]string{
		"outcomes out " + auezov + " psychological_help  total":     "1",
		"outcomes out " + auezov + " psychological_help  cancelled": "1",
		"outcomes out " + auezov + " mothers_home  open":            "1",
		"weeks out " + auezov + "  " + week + " referrals":          "2",
	})
	if _, ok := f["outcomes out "+auezov+" legal_help  total"]; ok {
		t.Error("filtered by Auezov, the dashboard counts Almaly's legal help")
	}
	_, body = all.get("/ui/dashboard?org=" + auezov)
	wantContains(t, body, `id="f-org"`, `<option value="`+auezov+`" selected>`, `organization: Family support centre, Auezov district`)

	// An auditor may look too.
	res, _ = n.signIn("ngo", "ngo-auditor").get("/ui/dashboard")
	wantStatus(t, res, http.StatusOK)
}

// A user of one organization sees its figures only, and may not ask for
// another's; caseworkers see no dashboard.
func TestDashboardScoping(t *testing.T) {
	t.Parallel()
	n := newDashNetwork(t)
	al := n.signIn("social", "almaly-supervisor")
	f := figures(t, al, "")
	wantFigures(t, "Almaly", f, map[string]string{
		"organizations out " + almaly + "   open":                              "1",
		"outcomes out " + almaly + " legal_help  total":                        "2",
		"outcomes out " + almaly + " psychological_help  total":                "1",
		"outcomes out " + almaly + " psychological_help  declined:no_capacity": "1",
		"weeks out " + almaly + "  " + thisMonday() + " referrals":             "3",
	})
	for k := range f {
		if strings.Contains(k, auezov) || strings.Contains(k, "mothers_home") || strings.Contains(k, "cancelled") && f[k] != "0" {
			t.Errorf("Almaly's supervisor sees Auezov's figure %q = %s", k, f[k])
		}
	}
	res, body := al.get("/ui/dashboard")
	wantStatus(t, res, http.StatusOK)
	if strings.Contains(body, `data-org="`+auezov+`"`) || strings.Contains(body, `id="f-org"`) {
		t.Error("Almaly's supervisor is shown Auezov's row, or a filter by organization")
	}
	for _, path := range []string{"/ui/dashboard?org=" + auezov, "/ui/dashboard.csv?org=" + auezov} {
		res, body := al.get(path)
		wantStatus(t, res, http.StatusForbidden)
		if strings.Contains(body, "mothers") {
			t.Errorf("%s shows Auezov's figures", path)
		}
	}

	for _, node := range []string{"social", "ngo"} {
		cw := n.signIn(node, node+"-caseworker")
		for _, path := range []string{"/ui/dashboard", "/ui/dashboard.csv"} {
			res, body := cw.get(path)
			wantStatus(t, res, http.StatusForbidden)
			if strings.Contains(body, "data-fig") || strings.Contains(body, "figure,direction") {
				t.Errorf("a caseworker at %s is shown %s's figures", node, path)
			}
		}
		_, body := cw.get("/ui/inbox")
		if strings.Contains(body, `href="/ui/dashboard"`) {
			t.Errorf("a caseworker at %s is offered the dashboard", node)
		}
	}
}

// A period a person must correct comes back with what was typed and why;
// the dashboard's routes are in the OpenAPI document.
func TestDashboardBadPeriod(t *testing.T) {
	t.Parallel()
	n := newNetwork(t, nil, "health", "ngo")
	if err := n.App("health").SetLanguage(context.Background(), "health-supervisor", "en"); err != nil {
		t.Fatal(err)
	}
	sup := n.signIn("health", "health-supervisor")
	for q, want := range map[string]string{
		"?from=2026-13-01":               "“2026-13-01” is not a date",
		"?from=2026-05-02&to=2026-05-01": "The period ends before it begins",
		"?from=2020-01-01&to=2026-01-01": "longer than a year",
	} {
		res, body := sup.get("/ui/dashboard" + q)
		wantStatus(t, res, http.StatusUnprocessableEntity)
		wantContains(t, body, `id="error"`, html.EscapeString(want), `id="f-from"`)
		if from := strings.TrimPrefix(strings.Split(q, "&")[0], "?from="); !strings.Contains(body, `value="`+from+`"`) {
			t.Errorf("%s: the form lost the typed day", q)
		}
		res, _ = sup.get("/ui/dashboard.csv" + q)
		wantStatus(t, res, http.StatusUnprocessableEntity)
	}
	// An empty period still has its weeks, with nothing in them.
	res, body := sup.get("/ui/dashboard?from=2025-01-06&to=2025-01-19")
	wantStatus(t, res, http.StatusOK)
	if got := strings.Count(body, `<tr data-week=`); got != 2 {
		t.Errorf("two weeks show as %d", got)
	}
	wantContains(t, body, `<tr data-week="2025-01-06">`, "No referrals in the period.")

	_, body = n.client("health").get("/openapi.json")
	wantContains(t, body, `"/ui/dashboard"`, `"/ui/dashboard.csv"`, `"text/csv"`)
}
