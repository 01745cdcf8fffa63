package web

import (
	"errors"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/google/uuid"

	"github.com/refbus/refbus/pkg/referral"
	"github.com/refbus/refbus/services/internal/core/app"
)

// The caseworker's day: the needs-action view, assignment, the family's
// case and the search that finds it.

// actionRow is a referral to act on, as the needs-action view shows it.
type actionRow struct {
	app.Referral
	From, Ours, Assignee string
	// Due is the deadline of the move to make; zero for none.
	Due     time.Time
	Overdue bool
	// Left is how long is left until Due, in the page's words.
	Left string
	// Step is the move due: accept, then complete.
	Step string
}

type actionData struct {
	Mine bool
	Rows []actionRow
	// New is how many referrals to act on nobody has opened (up to 100).
	New   int64
	Later string
	Orgs  []choice
	Org   string
}

func (u *UI) actionPage(w http.ResponseWriter, r *http.Request) {
	p, _ := PrincipalFrom(r.Context())
	q := r.URL.Query()
	d := actionData{Mine: q.Get("mine") != "", Org: q.Get("org")}
	f := app.ActionFilter{Org: d.Org, Limit: pageSize + 1}
	if d.Mine {
		f.AssignedTo = p.Username
	}
	if at, id, ok := strings.Cut(q.Get("after"), "_"); ok {
		if t, err := time.Parse(time.RFC3339Nano, at); err == nil {
			if uid, err := uuid.Parse(id); err == nil {
				f.AfterDue, f.AfterID = &t, uid
			}
		}
	}
	page, err := u.app.Actions(r.Context(), f)
	if errors.Is(err, app.ErrForbidden) || errors.Is(err, app.ErrInvalid) {
		u.errorPage(w, r, http.StatusForbidden, "error.forbidden")
		return
	}
	if err != nil {
		u.fail(w, r, err)
		return
	}
	t := u.tr(r)
	d.New = page.New
	if own := u.app.Organizations(); len(own) > 1 && app.OrgOf(r.Context()) == "" {
		for _, o := range own {
			d.Orgs = append(d.Orgs, choice{Label: u.orgLabel(t, o.ID), ID: o.ID})
		}
	}
	rs := page.Referrals
	if len(rs) > pageSize {
		last := rs[pageSize-1]
		v := url.Values{}
		for k, s := range map[string]string{"mine": q.Get("mine"), "org": d.Org} {
			if s != "" {
				v.Set(k, s)
			}
		}
		v.Set("after", last.ActionKey().Format(time.RFC3339Nano)+"_"+last.ID.String())
		d.Later = "/ui/action?" + v.Encode()
		rs = rs[:pageSize]
	}
	now := time.Now()
	for _, x := range rs {
		row := actionRow{Referral: x, From: u.orgAt(t, x.FromOrg, x.FromAgency), Ours: u.orgLabel(t, x.ToOrg), Assignee: x.AssignedTo, Step: "complete"}
		if x.Status == string(referral.Requested) || x.Status == string(referral.Received) {
			row.Step = "accept"
		}
		if x.ActionDue != nil {
			row.Due = *x.ActionDue
			row.Overdue = !row.Due.After(now)
			row.Left = t.Left(row.Due.Sub(now))
		}
		d.Rows = append(d.Rows, row)
	}
	u.render(w, r, http.StatusOK, "action", "action", d, "")
}

// assign assigns a referral (form: to = a user name, "me", or empty for
// no one) and goes back to where the form was.
func (u *UI) assign(w http.ResponseWriter, r *http.Request) {
	p, _ := PrincipalFrom(r.Context())
	id, err := uuid.Parse(r.PathValue("id"))
	if err != nil {
		u.errorPage(w, r, http.StatusNotFound, "error.not_found")
		return
	}
	to := strings.TrimSpace(r.PostFormValue("to"))
	if to == "me" {
		to = p.Username
	}
	err = u.app.Assign(r.Context(), id, to)
	if status, key := moveProblem(err); status != 0 {
		if status == http.StatusInternalServerError {
			u.log.Error("assign failed", "referral_id", id, "err", err)
		}
		u.showReferral(w, r, status, key)
		return
	}
	back := r.PostFormValue("back")
	if !strings.HasPrefix(back, "/ui/") {
		back = "/ui/referrals/" + id.String()
	}
	http.Redirect(w, r, back, http.StatusSeeOther)
}

// caseEntry is one referral of a case as the case page shows it.
type caseEntry struct {
	app.Referral
	From, To string
	Incoming bool
	// Due is the deadline of its next move, zero for none: this node's
	// own move on a referral it received, the sender's clock on one it
	// sent.
	Due time.Time
	// ConsentUntil is the last moment the consent holds.
	ConsentUntil time.Time
}

type caseData struct {
	Case    app.Case
	Number  string
	Entries []caseEntry
	// Person: a referral of the case names the person (by a national id,
	// matched inside this node).
	Person   bool
	Timeline []app.Step
	// Others are other cases of the same person this node holds.
	Others []uuid.UUID
}

func (u *UI) casePage(w http.ResponseWriter, r *http.Request) {
	id, err := uuid.Parse(r.PathValue("id"))
	if err != nil {
		u.errorPage(w, r, http.StatusNotFound, "error.not_found")
		return
	}
	c, err := u.app.Case(r.Context(), id)
	if errors.Is(err, app.ErrNotFound) {
		u.errorPage(w, r, http.StatusNotFound, "error.not_found")
		return
	}
	if err != nil {
		u.fail(w, r, err)
		return
	}
	// The auditors' record of who opened the family's case.
	p, _ := PrincipalFrom(r.Context())
	if err := u.app.LogCaseAccess(r.Context(), id, uuid.Nil, p.Username, app.ViaUI); err != nil {
		u.fail(w, r, err)
		return
	}
	due, err := u.app.CaseDeadlines(r.Context(), id)
	if err != nil {
		u.fail(w, r, err)
		return
	}
	t := u.tr(r)
	d := caseData{Case: c, Number: app.CaseNumber(id), Timeline: c.Timeline}
	for _, x := range c.Referrals {
		e := caseEntry{Referral: x, From: u.orgAt(t, x.FromOrg, x.FromAgency), To: u.orgAt(t, x.ToOrg, x.ToAgency), Incoming: x.ToAgency == u.agency}
		if x.ConsentExpires != nil {
			e.ConsentUntil = x.ConsentExpires.Add(-time.Second) // the end of the last day it holds
		}
		if e.Incoming && x.ActionDue != nil {
			e.Due = *x.ActionDue
		} else if at, ok := due[x.ID]; ok && !e.Incoming {
			e.Due = at
		}
		if e.Incoming && x.Status == string(referral.Requested) {
			e.Status = string(referral.Received)
		}
		d.Entries = append(d.Entries, e)
	}
	for _, x := range c.Referrals {
		d.Person = d.Person || x.PersonKnown
	}
	// The other cases of the same person, as a referral of this case
	// reads them.
	if full, err := u.app.Referral(r.Context(), c.Referrals[0].ID); err == nil {
		d.Others = full.SamePersonCases
	}
	u.render(w, r, http.StatusOK, "case", "", d, "")
}

type searchData struct {
	Query string
	// Masked is the national id searched for, all but its last four
	// digits hidden; empty for a case number.
	Masked string
	Cases  []app.CaseSummary
}

func (u *UI) searchPage(w http.ResponseWriter, r *http.Request) {
	u.render(w, r, http.StatusOK, "search", "", searchData{}, "")
}

// search finds cases by case number or national id: one case opens its
// page at once. It is a POST, so a national id stays out of addresses,
// histories and logs.
func (u *UI) search(w http.ResponseWriter, r *http.Request) {
	q := strings.TrimSpace(r.PostFormValue("q"))
	d := searchData{Query: q}
	if q == "" {
		u.render(w, r, http.StatusOK, "search", "", d, "")
		return
	}
	if _, ok := app.ParseCaseNumber(q); !ok {
		d.Query, d.Masked = "", mask(q)
	}
	cases, err := u.app.FindCases(r.Context(), q)
	if errors.Is(err, app.ErrInvalid) {
		u.render(w, r, http.StatusUnprocessableEntity, "search", "", d, "search.invalid")
		return
	}
	if err != nil {
		u.fail(w, r, err)
		return
	}
	if len(cases) == 1 {
		http.Redirect(w, r, "/ui/cases/"+cases[0].ID.String(), http.StatusSeeOther)
		return
	}
	d.Cases = cases
	u.render(w, r, http.StatusOK, "search", "", d, "")
}

// mask hides all but the last four characters of a national id.
func mask(id string) string {
	if len(id) <= 4 {
		return strings.Repeat("•", len(id))
	}
	return strings.Repeat("•", len(id)-4) + id[len(id)-4:]
}

type directoryData struct {
	Area, Service string
	Services      []string
	// Orgs are the organizations of the other nodes that match, each with
	// the matching services.
	Orgs []choice
	// Case is the case a referral made from here joins, if one was given.
	Case string
}

// directoryPage finds organizations to refer to by region and service,
// with what the directory says of each service, and a link that opens
// the new-referral form with it chosen.
func (u *UI) directoryPage(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	t := u.tr(r)
	d := directoryData{Area: strings.TrimSpace(q.Get("area")), Service: q.Get("service"), Case: q.Get("case")}
	seen := map[string]bool{}
	area := strings.ToLower(d.Area)
	for _, h := range u.app.Others() {
		c := choice{Label: u.orgLabel(t, h.Org.ID), ID: h.Org.ID}
		for _, o := range h.Org.Services {
			if !seen[o.Name] {
				seen[o.Name] = true
				d.Services = append(d.Services, o.Name)
			}
			if d.Service != "" && o.Name != d.Service {
				continue
			}
			if area != "" && !strings.Contains(strings.ToLower(o.Area+" "+h.Org.Area+" "+h.Org.Name), area) {
				continue
			}
			c.Services = append(c.Services, offerChoice{Name: o.Name, Detail: offerDetail(t, h.Org, o)})
		}
		if len(c.Services) > 0 {
			d.Orgs = append(d.Orgs, c)
		}
	}
	slices.Sort(d.Services)
	u.render(w, r, http.StatusOK, "directory", "directory", d, "")
}
