package web

import (
	"encoding/csv"
	"fmt"
	"html/template"
	"mime"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/refbus/refbus/pkg/referral"
	"github.com/refbus/refbus/services/internal/core/app"
)

// dashWeeks is the default period of the dashboard: this week and the 11
// before it.
const dashWeeks = 12

// dashFilter is the dashboard's filter as typed: an organization and the
// first and last days of the period (yyyy-mm-dd, in the UI's time zone).
type dashFilter struct {
	Org, From, To string
}

// CSV is the address of the filter's figures as CSV.
func (f dashFilter) CSV() string { return "/ui/dashboard.csv?" + f.query() }

func (f dashFilter) query() string {
	v := url.Values{}
	for k, s := range map[string]string{"org": f.Org, "from": f.From, "to": f.To} {
		if s != "" {
			v.Set(k, s)
		}
	}
	return v.Encode()
}

// dashPeriod reads the filter, with the default period's days filled in,
// and the period as the app takes it: from the start of the first day to
// the end of the last. A period a person must correct comes with the key
// of the message that says why, and its arguments.
func (u *UI) dashPeriod(r *http.Request) (dashFilter, app.DashboardFilter, string, []any) {
	q := r.URL.Query()
	f := dashFilter{Org: q.Get("org"), From: strings.TrimSpace(q.Get("from")), To: strings.TrimSpace(q.Get("to"))}
	today := time.Now().In(u.cfg.Location)
	if f.To == "" {
		f.To = today.Format(time.DateOnly)
	}
	if f.From == "" {
		days := (int(today.Weekday()) + 6) % 7 // back to Monday
		f.From = today.AddDate(0, 0, -days-7*(dashWeeks-1)).Format(time.DateOnly)
	}
	af := app.DashboardFilter{Org: f.Org, Location: u.cfg.Location}
	from, to := u.day(f.From, 0), u.day(f.To, 1)
	switch {
	case from == nil:
		return f, af, "dash.bad_date", []any{"from", f.From}
	case to == nil:
		return f, af, "dash.bad_date", []any{"to", f.To}
	case !from.Before(*to):
		return f, af, "dash.bad_period", nil
	case to.Sub(*from) > app.MaxDashboardPeriod:
		return f, af, "dash.too_long", nil
	}
	af.From, af.To = *from, *to
	return f, af, "", nil
}

type dashData struct {
	Filter dashFilter
	// Orgs are this node's organizations to filter by, for a user who
	// sees more than one.
	Orgs []choice
	// OrgName names the organization the figures are of; empty for all.
	OrgName string
	// Ready: the figures were read (the filter was right).
	Ready bool
	D     app.Dashboard
	// Labels name the dashboard's organizations and services.
	OrgLabels map[string]string
	Charts    map[string]template.HTML
}

// LastDay is the period's last day.
func (d dashData) LastDay() time.Time { return d.D.To.Add(-time.Nanosecond) }

func (u *UI) dashboardPage(w http.ResponseWriter, r *http.Request) {
	if !u.mayViewDashboard(w, r) {
		return
	}
	d, status, errKey, errArgs := u.dashboard(r)
	if d.Ready {
		u.charts(r, &d)
	}
	u.render(w, r, status, "dashboard", "dashboard", d, errKey, errArgs...)
}

// mayViewDashboard answers 403 to a caseworker: the dashboard is for
// supervisors and auditors.
func (u *UI) mayViewDashboard(w http.ResponseWriter, r *http.Request) bool {
	if p, _ := PrincipalFrom(r.Context()); p == nil || (p.Role != RoleSupervisor && p.Role != RoleAuditor) {
		u.errorPage(w, r, http.StatusForbidden, "error.forbidden")
		return false
	}
	return true
}

// dashboard reads the dashboard's figures for the request: the status
// and the error of a page that cannot show them.
func (u *UI) dashboard(r *http.Request) (d dashData, status int, errKey string, errArgs []any) {
	t := u.tr(r)
	f, af, errKey, errArgs := u.dashPeriod(r)
	d.Filter = f
	if own := u.app.Organizations(); len(own) > 1 && app.OrgOf(r.Context()) == "" {
		for _, o := range own {
			d.Orgs = append(d.Orgs, choice{Label: u.orgLabel(t, o.ID), ID: o.ID})
		}
	}
	if errKey != "" {
		if errKey == "dash.bad_date" {
			errArgs[0] = t.Msg("dash." + errArgs[0].(string))
		}
		return d, http.StatusUnprocessableEntity, errKey, errArgs
	}
	var err error
	d.D, err = u.app.Dashboard(r.Context(), af)
	if status, key := moveProblem(err); status != 0 {
		if status == http.StatusInternalServerError {
			u.log.Error("read dashboard", "err", err)
			return d, status, key, nil
		}
		if status == http.StatusUnprocessableEntity {
			return d, status, "dash.bad_filter", []any{reasonOf(err)}
		}
		return d, status, key, nil
	}
	d.Ready = true
	d.OrgLabels = map[string]string{}
	for _, o := range d.D.Orgs {
		d.OrgLabels[o.Org] = u.orgLabel(t, o.Org)
	}
	if d.D.Org != "" {
		d.OrgName = u.orgLabel(t, d.D.Org)
	}
	return d, http.StatusOK, "", nil
}

// charts draws the dashboard's figures.
func (u *UI) charts(r *http.Request, d *dashData) {
	t := u.tr(r)
	below := t.Msg("dash.chart_desc")
	d.Charts = map[string]template.HTML{}

	var orgs []string
	in, out := barSeries{Name: t.Msg("dash.in"), Class: "bar-in"}, barSeries{Name: t.Msg("dash.out"), Class: "bar-out"}
	for _, o := range d.D.Orgs {
		orgs = append(orgs, d.OrgLabels[o.Org])
		in.Values = append(in.Values, float64(o.InOverdue))
		out.Values = append(out.Values, float64(o.OutOverdue))
	}
	d.Charts["overdue"] = barChart{ID: "chart-overdue", Title: t.Msg("dash.overdue_title"), Desc: below, Labels: orgs, Series: []barSeries{in, out}}.SVG()

	serviceLabel := func(direction, service string) string {
		return t.Maybe("service.", service) + " · " + t.Msg("dash.short_"+direction)
	}
	var services []string
	series := func(name, class string) barSeries { return barSeries{Name: name, Class: class} }
	acceptMed, acceptP90 := series(t.Msg("dash.median"), "bar-median"), series(t.Msg("dash.p90"), "bar-p90")
	completeMed, completeP90 := series(t.Msg("dash.median"), "bar-median"), series(t.Msg("dash.p90"), "bar-p90")
	add := func(s *barSeries, d time.Duration, n int64) {
		s.Values = append(s.Values, d.Hours())
		if n == 0 {
			s.Text = append(s.Text, "—")
		} else {
			s.Text = append(s.Text, duration(t, d))
		}
	}
	for _, s := range d.D.Times {
		services = append(services, serviceLabel(s.Direction, s.Service))
		add(&acceptMed, s.AcceptMedian, s.Accepted)
		add(&acceptP90, s.AcceptP90, s.Accepted)
		add(&completeMed, s.CompleteMedian, s.Completed)
		add(&completeP90, s.CompleteP90, s.Completed)
	}
	d.Charts["accept"] = barChart{ID: "chart-accept", Title: t.Msg("dash.accept_title"), Desc: below, Labels: services, Series: []barSeries{acceptMed, acceptP90}}.SVG()
	d.Charts["complete"] = barChart{ID: "chart-complete", Title: t.Msg("dash.complete_title"), Desc: below, Labels: services, Series: []barSeries{completeMed, completeP90}}.SVG()

	services = nil
	ends := []struct {
		status string
		n      func(app.ServiceOutcomes) int64
	}{
		{"completed", func(o app.ServiceOutcomes) int64 { return o.Completed }},
		{"declined", func(o app.ServiceOutcomes) int64 { return o.DeclinedTotal }},
		{"cancelled", func(o app.ServiceOutcomes) int64 { return o.Cancelled }},
		{"failed", func(o app.ServiceOutcomes) int64 { return o.Failed }},
		{"forwarded", func(o app.ServiceOutcomes) int64 { return o.Forwarded }},
		{"open", func(o app.ServiceOutcomes) int64 { return o.Open }},
	}
	outcomes := make([]barSeries, len(ends))
	for i, e := range ends {
		outcomes[i] = barSeries{Name: t.Msg("dash.outcome_" + e.status), Class: "bar-" + e.status}
	}
	for _, o := range d.D.Outcomes {
		services = append(services, serviceLabel(o.Direction, o.Service))
		for i, e := range ends {
			outcomes[i].Values = append(outcomes[i].Values, float64(e.n(o)))
		}
	}
	d.Charts["outcomes"] = barChart{ID: "chart-outcomes", Title: t.Msg("dash.outcomes_title"), Desc: below, Labels: services, Series: outcomes, Stacked: true}.SVG()

	var weeks []string
	in, out = barSeries{Name: t.Msg("dash.in"), Class: "bar-in"}, barSeries{Name: t.Msg("dash.out"), Class: "bar-out"}
	for _, w := range d.D.Weeks {
		weeks = append(weeks, t.Date(w.Start))
		in.Values = append(in.Values, float64(w.In))
		out.Values = append(out.Values, float64(w.Out))
	}
	d.Charts["weeks"] = barChart{ID: "chart-weeks", Title: t.Msg("dash.weeks_title"), Desc: below, Labels: weeks, Series: []barSeries{in, out}}.SVG()
}

// duration writes a time to accept or to complete as a person reads it:
// its two largest units.
func duration(t T, d time.Duration) string {
	if d < time.Minute {
		return t.Msg("dash.under_minute")
	}
	days, hours, minutes := int(d/(24*time.Hour)), int(d/time.Hour)%24, int(d/time.Minute)%60
	switch {
	case days > 0 && hours > 0:
		return t.Msg("dash.days", days) + " " + t.Msg("dash.hours", hours)
	case days > 0:
		return t.Msg("dash.days", days)
	case hours > 0 && minutes > 0:
		return t.Msg("dash.hours", hours) + " " + t.Msg("dash.minutes", minutes)
	case hours > 0:
		return t.Msg("dash.hours", hours)
	}
	return t.Msg("dash.minutes", minutes)
}

// Declined writes a service's declined referrals by reason, for the
// outcomes table: "no capacity 2, other 1".
func (d dashData) Declined(t T, o app.ServiceOutcomes) string {
	var parts []string
	for _, rc := range referral.ReasonCodes() {
		if n := o.Declined[string(rc)]; n > 0 {
			parts = append(parts, t.Maybe("reason.", string(rc))+" "+strconv.FormatInt(n, 10))
		}
	}
	for rc, n := range o.Declined { // a reason code this version does not know
		if !slices.Contains(referral.ReasonCodes(), referral.ReasonCode(rc)) && n > 0 {
			parts = append(parts, t.Maybe("reason.", rc)+" "+strconv.FormatInt(n, 10))
		}
	}
	return strings.Join(parts, ", ")
}

// Duration writes a time for the tables, "—" where no referral is behind
// it.
func (d dashData) Duration(t T, v time.Duration, n int64) string {
	if n == 0 {
		return "—"
	}
	return duration(t, v)
}

// dashboardCSV answers the dashboard's figures as CSV, one figure a row
// (figure, direction, organization, service, week, measure, value), for a
// spreadsheet's pivot table. Times are in hours.
func (u *UI) dashboardCSV(w http.ResponseWriter, r *http.Request) {
	if !u.mayViewDashboard(w, r) {
		return
	}
	d, status, errKey, errArgs := u.dashboard(r)
	if status != http.StatusOK {
		u.render(w, r, status, "dashboard", "dashboard", d, errKey, errArgs...)
		return
	}
	var rows [][]string
	add := func(figure, direction, org, service, week, measure string, value any) {
		rows = append(rows, []string{figure, direction, org, service, week, measure, fmt.Sprint(value)})
	}
	hours := func(v time.Duration) string { return strconv.FormatFloat(v.Hours(), 'f', 2, 64) }
	for _, o := range d.D.Orgs {
		add("organizations", app.In, o.Org, "", "", "open", o.InOpen)
		add("organizations", app.In, o.Org, "", "", "overdue", o.InOverdue)
		add("organizations", app.Out, o.Org, "", "", "open", o.OutOpen)
		add("organizations", app.Out, o.Org, "", "", "overdue", o.OutOverdue)
	}
	for _, s := range d.D.Times {
		add("times", s.Direction, d.D.Org, s.Service, "", "accepted", s.Accepted)
		if s.Accepted > 0 {
			add("times", s.Direction, d.D.Org, s.Service, "", "accept_median_hours", hours(s.AcceptMedian))
			add("times", s.Direction, d.D.Org, s.Service, "", "accept_p90_hours", hours(s.AcceptP90))
		}
		add("times", s.Direction, d.D.Org, s.Service, "", "completed", s.Completed)
		if s.Completed > 0 {
			add("times", s.Direction, d.D.Org, s.Service, "", "complete_median_hours", hours(s.CompleteMedian))
			add("times", s.Direction, d.D.Org, s.Service, "", "complete_p90_hours", hours(s.CompleteP90))
		}
	}
	for _, o := range d.D.Outcomes {
		out := func(measure string, n int64) { add("outcomes", o.Direction, d.D.Org, o.Service, "", measure, n) }
		out("total", o.Total)
		out("completed", o.Completed)
		out("declined", o.DeclinedTotal)
		for _, rc := range slices.Sorted(func(yield func(string) bool) {
			for rc := range o.Declined {
				if !yield(rc) {
					return
				}
			}
		}) {
			out("declined:"+rc, o.Declined[rc])
		}
		out("cancelled", o.Cancelled)
		out("failed", o.Failed)
		out("forwarded", o.Forwarded)
		out("open", o.Open)
	}
	for _, wk := range d.D.Weeks {
		day := wk.Start.Format(time.DateOnly)
		add("weeks", app.In, d.D.Org, "", day, "referrals", wk.In)
		add("weeks", app.Out, d.D.Org, "", day, "referrals", wk.Out)
	}

	name := "refbus-dashboard-" + u.agency
	if d.D.Org != "" {
		name += "-" + d.D.Org
	}
	name += "-" + d.Filter.From + "-" + d.Filter.To + ".csv"
	w.Header().Set("Content-Type", "text/csv; charset=utf-8")
	w.Header().Set("Content-Disposition", mime.FormatMediaType("attachment", map[string]string{"filename": name}))
	cw := csv.NewWriter(w)
	_ = cw.Write([]string{"figure", "direction", "organization", "service", "week", "measure", "value"})
	_ = cw.WriteAll(rows)
	if err := cw.Error(); err != nil {
		u.log.Warn("write dashboard csv", "err", err)
	}
}
