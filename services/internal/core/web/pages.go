package web

import (
	"bytes"
	"cmp"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/google/uuid"
	"golang.org/x/crypto/bcrypt"

	"github.com/refbus/refbus/pkg/referral"
	"github.com/refbus/refbus/schemas"
	"github.com/refbus/refbus/services/internal/core/app"
	"github.com/refbus/refbus/services/internal/core/directory"
)

// page is what every template gets.
type page struct {
	T      T
	P      *Principal
	Agency string
	// OrgName is the name of the organization the principal works for,
	// if one.
	OrgName string
	Nav     string
	Langs   []string
	// LangNames are the languages' own names.
	LangNames map[string]string
	// Path is the page's path and query, to come back to after a change of
	// language.
	Path  string
	Error string
	OIDC  bool
	Data  any
}

// tr returns the translator for a request: the signed-in user's language,
// or the browser's before sign-in.
func (u *UI) tr(r *http.Request) T {
	lang := browserLang(r, u.cfg.Lang)
	if p, ok := PrincipalFrom(r.Context()); ok && slices.Contains(Langs, p.Lang) {
		lang = p.Lang
	}
	return T{lang: lang, cat: u.cats[lang], loc: u.cfg.Location}
}

// render writes a page; errKey, if set, names the message shown as its
// error, with errArgs for the message's verbs.
func (u *UI) render(w http.ResponseWriter, r *http.Request, status int, name, nav string, data any, errKey string, errArgs ...any) {
	p, _ := PrincipalFrom(r.Context())
	t := u.tr(r)
	pg := page{T: t, P: p, Agency: u.agency, Nav: nav, Langs: Langs, LangNames: langNames, Path: backPath(r), OIDC: u.oidc != nil, Data: data}
	if p != nil && p.Org != "" {
		pg.OrgName = u.orgLabel(t, p.Org)
	}
	if errKey != "" {
		pg.Error = t.Msg(errKey, errArgs...)
	}
	var buf bytes.Buffer
	if err := u.pages[name].ExecuteTemplate(&buf, "layout", pg); err != nil {
		u.log.Error("render page", "page", name, "err", err)
		http.Error(w, "internal error", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.WriteHeader(status)
	_, _ = w.Write(buf.Bytes())
}

// backPath is where switching the language returns to: the page itself,
// or, for the answer to a form that failed (a POST, which cannot be
// fetched again), the page the form was on.
func backPath(r *http.Request) string {
	if r.Method == http.MethodGet || r.Method == http.MethodHead {
		return r.URL.RequestURI()
	}
	if ref, err := url.Parse(r.Referer()); err == nil && (ref.Host == "" || ref.Host == r.Host) && strings.HasPrefix(ref.Path, "/ui/") {
		return ref.RequestURI()
	}
	return "/ui/inbox"
}

func (u *UI) errorPage(w http.ResponseWriter, r *http.Request, status int, key string) {
	if key == "error.forbidden" {
		if p, ok := PrincipalFrom(r.Context()); !ok || p.Agency != u.agency {
			key = "error.other_agency"
		}
	}
	var args []any
	if key == "error.other_agency" { // "…this is the service of the %s agency."
		args = append(args, u.tr(r).Maybe("agency.", u.agency))
	}
	u.render(w, r, status, "error", "", nil, key, args...)
}

// orgLabel is how a page names organization id: its name, or for one
// named after its node (the default), the node's name in the page's
// language.
func (u *UI) orgLabel(t T, id string) string {
	if name := u.app.OrgName(id); name != "" && name != id {
		return name
	}
	return t.Maybe("agency.", id)
}

// orgAt names organization org at node: with the node's name too when
// the organization is not named after it.
func (u *UI) orgAt(t T, org, node string) string {
	if org == node || org == "" {
		return t.Maybe("agency.", node)
	}
	return u.orgLabel(t, org) + " · " + t.Maybe("agency.", node)
}

// choice is an organization of another node a referral may go to, with
// the services it offers, as the forms offer them: one option per
// service, in a group per organization, whose value is "org/service".
type choice struct {
	Label    string
	ID       string
	Services []offerChoice
}

// offerChoice is a service an organization offers, with what the
// directory says of it: who may be referred, where, in which languages,
// and its free places.
type offerChoice struct {
	Name, Detail string
}

// choices are the organizations of the other nodes, by node, each
// labelled with its kind unless it is named after its node.
func (u *UI) choices(t T) []choice {
	var out []choice
	for _, h := range u.app.Others() {
		label := u.orgLabel(t, h.Org.ID)
		if h.Org.ID != h.Node {
			label += " · " + t.Maybe("agency.", h.Kind)
		}
		c := choice{Label: label, ID: h.Org.ID}
		for _, o := range h.Org.Services {
			c.Services = append(c.Services, offerChoice{Name: o.Name, Detail: offerDetail(t, h.Org, o)})
		}
		out = append(out, c)
	}
	return out
}

// offerDetail is what the directory says of offer o of organization
// org, in a line.
func offerDetail(t T, org directory.Organization, o directory.Offer) string {
	var parts []string
	if o.Eligibility != "" {
		parts = append(parts, o.Eligibility)
	}
	if area := cmp.Or(o.Area, org.Area); area != "" {
		parts = append(parts, area)
	}
	langs := o.Languages
	if len(langs) == 0 {
		langs = org.Languages
	}
	if len(langs) > 0 {
		parts = append(parts, strings.ToUpper(strings.Join(langs, ", ")))
	}
	if o.FreeBeds != nil {
		parts = append(parts, t.Msg("directory.free_beds", *o.FreeBeds))
	}
	return strings.Join(parts, " · ")
}

// offerOf reads the org/service pair a form's choice posted in field.
func offerOf(r *http.Request, field string) (org, service string) {
	org, service, _ = strings.Cut(r.PostFormValue(field), "/")
	return org, service
}

// --- sign-in ---

func (u *UI) loginPage(w http.ResponseWriter, r *http.Request) {
	u.render(w, r, http.StatusOK, "login", "", nil, "")
}

// dummyHash keeps a sign-in for an unknown user as slow as for a known one.
var dummyHash, _ = bcrypt.GenerateFromPassword([]byte("no user has this password"), bcrypt.DefaultCost)

func (u *UI) login(w http.ResponseWriter, r *http.Request) {
	name, password := strings.TrimSpace(r.PostFormValue("username")), r.PostFormValue("password")
	if !u.tries.allow(r.RemoteAddr, name) {
		u.log.Warn("sign-in attempts throttled")
		w.Header().Set("Retry-After", fmt.Sprint(int(signInEvery.Seconds())))
		u.render(w, r, http.StatusTooManyRequests, "login", "", nil, "login.throttled")
		return
	}
	user, err := u.app.UserByName(r.Context(), name)
	hash := dummyHash
	if err == nil && user.PasswordHash != "" {
		hash = []byte(user.PasswordHash)
	} else if err != nil && !errors.Is(err, app.ErrNotFound) {
		u.fail(w, r, err)
		return
	}
	// Compare even when there is no such user, so the answer takes as
	// long and does not tell which user names exist.
	match := bcrypt.CompareHashAndPassword(hash, []byte(password)) == nil
	if !match || err != nil || user.PasswordHash == "" {
		u.tries.failed(r.RemoteAddr, name)
		u.log.Info("sign-in refused")
		u.render(w, r, http.StatusUnauthorized, "login", "", nil, "login.failed")
		return
	}
	if err := u.newSession(r.Context(), w, user.Username, user.Role); errors.Is(err, errDisabled) {
		u.log.Info("sign-in of a disabled user refused")
		u.render(w, r, http.StatusForbidden, "login", "", nil, "users.login_disabled")
		return
	} else if err != nil {
		u.fail(w, r, err)
		return
	}
	// The language chosen on the sign-in page becomes the user's.
	if c, err := r.Cookie(langCookie); err == nil && slices.Contains(Langs, c.Value) {
		if err := u.app.SetLanguage(r.Context(), user.Username, c.Value); err != nil {
			u.fail(w, r, err)
			return
		}
	}
	http.Redirect(w, r, "/ui/inbox", http.StatusSeeOther)
}

func (u *UI) logout(w http.ResponseWriter, r *http.Request) {
	if p, ok := PrincipalFrom(r.Context()); ok && p.Session != nil {
		if err := u.app.EndSession(r.Context(), p.Session); err != nil {
			u.fail(w, r, err)
			return
		}
	}
	http.SetCookie(w, u.cookie(u.sessionCookie(), "", time.Time{}))
	http.Redirect(w, r, "/ui/login", http.StatusSeeOther)
}

func (u *UI) setLang(w http.ResponseWriter, r *http.Request) {
	lang := r.PostFormValue("lang")
	if !slices.Contains(Langs, lang) {
		u.errorPage(w, r, http.StatusUnprocessableEntity, "error.invalid")
		return
	}
	if p, ok := PrincipalFrom(r.Context()); ok && p.Session != nil {
		if err := u.app.SetLanguage(r.Context(), p.Username, lang); err != nil {
			u.fail(w, r, err)
			return
		}
	}
	http.SetCookie(w, u.cookie(langCookie, lang, time.Now().AddDate(1, 0, 0)))
	back := r.PostFormValue("back")
	if !strings.HasPrefix(back, "/ui/") {
		back = "/ui/inbox"
	}
	http.Redirect(w, r, back, http.StatusSeeOther)
}

// fail answers an unexpected error without its details.
func (u *UI) fail(w http.ResponseWriter, r *http.Request, err error) {
	u.log.Error("request failed", "path", r.URL.Path, "err", err)
	u.errorPage(w, r, http.StatusInternalServerError, "error.internal")
}

// --- lists ---

// filter is the inbox's and the sent view's filter, from the query.
type filter struct {
	Org, Status, Service, From, To string
	Overdue                        bool
	before                         *time.Time
	beforeID                       uuid.UUID
}

// Query is the filter as a query string, for links.
func (f filter) Query() string {
	v := url.Values{}
	for k, s := range map[string]string{"org": f.Org, "status": f.Status, "service": f.Service, "from": f.From, "to": f.To} {
		if s != "" {
			v.Set(k, s)
		}
	}
	if f.Overdue {
		v.Set("overdue", "1")
	}
	return v.Encode()
}

func (u *UI) readFilter(r *http.Request) filter {
	q := r.URL.Query()
	f := filter{Org: q.Get("org"), Status: q.Get("status"), Service: q.Get("service"), Overdue: q.Get("overdue") != "", From: q.Get("from"), To: q.Get("to")}
	if !slices.Contains(referral.States(), referral.State(f.Status)) {
		f.Status = ""
	}
	if b, id, ok := strings.Cut(q.Get("before"), "_"); ok {
		if t, err := time.Parse(time.RFC3339Nano, b); err == nil {
			if uid, err := uuid.Parse(id); err == nil {
				f.before, f.beforeID = &t, uid
			}
		}
	}
	return f
}

// day parses a yyyy-mm-dd of the date inputs as a local day.
func (u *UI) day(s string, plus int) *time.Time {
	if s == "" {
		return nil
	}
	t, err := time.ParseInLocation("2006-01-02", s, u.cfg.Location)
	if err != nil {
		return nil
	}
	t = t.AddDate(0, 0, plus)
	return &t
}

// pageSize is how many referrals a list shows at once.
const pageSize = 50

// row is a referral as a list shows it: Other is the organization at the
// other end, Ours this node's.
type row struct {
	ID, Other, Ours, Service, Status string
	CaseID, CaseNumber, Urgency      string
	Overdue                          bool
	Created, Updated                 time.Time
}

type count struct {
	Status     string
	N, Overdue int64
}

type listData struct {
	Box      string
	Filter   filter
	Rows     []row
	Counts   []count
	Total    int64
	Overdue  int64
	Older    string
	Statuses []string
	Services []string
	// Orgs are this node's organizations to filter by, for a user who
	// sees more than one.
	Orgs []choice
}

func (u *UI) inboxPage(w http.ResponseWriter, r *http.Request) { u.list(w, r, "inbox") }
func (u *UI) sentPage(w http.ResponseWriter, r *http.Request)  { u.list(w, r, "sent") }

func (u *UI) list(w http.ResponseWriter, r *http.Request, box string) {
	f := u.readFilter(r)
	d, err := u.listData(r, box, f)
	if err != nil {
		u.fail(w, r, err)
		return
	}
	u.render(w, r, http.StatusOK, "list", box, d, "")
}

func (u *UI) listData(r *http.Request, box string, f filter) (listData, error) {
	ctx := r.Context()
	list := app.Incoming
	if box == "sent" {
		list = app.Outgoing
	}
	page, err := u.app.ListPage(ctx, list, app.Filter{
		Org: f.Org, Status: f.Status, Service: f.Service, OverdueOnly: f.Overdue, From: u.day(f.From, 0), To: u.day(f.To, 1),
		BeforeAt: f.before, BeforeID: f.beforeID, Limit: pageSize + 1,
	})
	if err != nil {
		return listData{}, err
	}
	rs, cs := page.Referrals, page.Counts
	t := u.tr(r)
	d := listData{Box: box, Filter: f, Services: u.app.Services()}
	if own := u.app.Organizations(); len(own) > 1 && app.OrgOf(ctx) == "" {
		for _, o := range own {
			d.Orgs = append(d.Orgs, choice{Label: u.orgLabel(t, o.ID), ID: o.ID})
		}
	}
	for _, s := range referral.States() {
		d.Statuses = append(d.Statuses, string(s))
	}
	for _, s := range d.Statuses {
		for _, c := range cs {
			if c.Status == s {
				d.Counts = append(d.Counts, count{Status: s, N: c.N, Overdue: c.Overdue})
				d.Total += c.N
				d.Overdue += c.Overdue
			}
		}
	}
	if len(rs) > pageSize {
		last := rs[pageSize-1]
		v, _ := url.ParseQuery(f.Query())
		v.Set("before", last.CreatedAt.Format(time.RFC3339Nano)+"_"+last.ID.String())
		d.Older = "/ui/" + box + "?" + v.Encode()
		rs = rs[:pageSize]
	}
	for _, x := range rs {
		other, ours := u.orgAt(t, x.FromOrg, x.FromAgency), u.orgLabel(t, x.ToOrg)
		if box == "sent" {
			other, ours = u.orgAt(t, x.ToOrg, x.ToAgency), u.orgLabel(t, x.FromOrg)
		}
		d.Rows = append(d.Rows, row{ID: x.ID.String(), CaseID: x.CaseID.String(), CaseNumber: x.CaseNumber, Urgency: x.Urgency, Other: other, Ours: ours, Service: x.Service, Status: x.Status, Overdue: x.Overdue, Created: x.CreatedAt, Updated: x.UpdatedAt})
	}
	return d, nil
}

// --- a referral ---

// action is a move the agency may make now, with the fields it needs.
type action struct {
	Move    string
	Fields  []string
	Danger  bool
	Reasons []string
}

// moveFields are the form fields of each move, as pkg/referral needs them.
var moveFields = map[referral.Move][]string{
	referral.Decline:  {"reason_code", "reason"},
	referral.Hold:     {"reason"},
	referral.Fail:     {"reason"},
	referral.Cancel:   {"reason"},
	referral.Complete: {"outcome"},
	referral.Forward:  {"offer", "note", "consent"},
}

// placementFields are the fields of accepting a referral to a service that
// takes people in: the placement it records.
var placementFields = []string{"bed", "ends_on", "address"}

type referralData struct {
	R        app.Referral
	Incoming bool
	// From, To and Forwarded name the organizations, with their nodes.
	From, To, Forwarded string
	Actions             []action
	ReadOnly            bool
	Timeline            []app.Step
	Choices             []choice
	Reasons             []string
	// ParentSeen: this node holds the referral this one was forwarded
	// from, so the page may link to it.
	ParentSeen bool
	// Colleagues are whom the referral may be assigned to, for a
	// referral this node received.
	Colleagues []app.Colleague
	// Failed is the move whose form failed, and Form what was typed in
	// it, shown again.
	Failed string
	Form   url.Values
	// Changed: the actions were fetched again because the referral's
	// status changed while the page was open.
	Changed bool
	// Due is the deadline of this node's next move on it, zero for none.
	Due time.Time
}

func (u *UI) referralPage(w http.ResponseWriter, r *http.Request) {
	u.showReferral(w, r, http.StatusOK, "")
}

// actionsPart answers the live refresh of a referral page's forms: no
// content (204: the page keeps what is typed) while the referral is in
// the status the page shows (?status=), else the forms of its new status.
func (u *UI) actionsPart(w http.ResponseWriter, r *http.Request) {
	id, err := uuid.Parse(r.PathValue("id"))
	if err != nil {
		u.errorPage(w, r, http.StatusNotFound, "error.not_found")
		return
	}
	ref, err := u.app.Referral(r.Context(), id)
	if err == nil && ref.Status == r.URL.Query().Get("status") {
		w.WriteHeader(http.StatusNoContent)
		return
	}
	u.showReferral(w, r, http.StatusOK, "")
}

func (u *UI) showReferral(w http.ResponseWriter, r *http.Request, status int, errKey string) {
	id, err := uuid.Parse(r.PathValue("id"))
	if err != nil {
		u.errorPage(w, r, http.StatusNotFound, "error.not_found")
		return
	}
	ref, err := u.app.Referral(r.Context(), id)
	if errors.Is(err, app.ErrNotFound) {
		u.errorPage(w, r, http.StatusNotFound, "error.not_found")
		return
	}
	if err != nil {
		u.fail(w, r, err)
		return
	}
	c, err := u.app.Case(r.Context(), ref.CaseID)
	if err != nil {
		u.fail(w, r, err)
		return
	}
	p, _ := PrincipalFrom(r.Context())
	if r.Method == http.MethodGet {
		// The auditors' record of who opened the family's case.
		if err := u.app.LogCaseAccess(r.Context(), ref.CaseID, ref.ID, p.Username, app.ViaUI); err != nil {
			u.fail(w, r, err)
			return
		}
	}
	if r.Method == http.MethodGet && p.Role != RoleAuditor && (p.Org == "" || p.Org == ref.ToOrg) {
		if err := u.app.Opened(r.Context(), ref); err != nil {
			u.fail(w, r, err)
			return
		}
	}
	t := u.tr(r)
	d := referralData{
		R: ref, Incoming: ref.ToAgency == u.agency, Timeline: c.Timeline, Choices: u.choices(t), ReadOnly: p.Role == RoleAuditor,
		From: u.orgAt(t, ref.FromOrg, ref.FromAgency), To: u.orgAt(t, ref.ToOrg, ref.ToAgency), Forwarded: u.orgAt(t, ref.ForwardedOrg, ref.ForwardedAgency),
	}
	if ref.ParentID != nil {
		_, err := u.app.Referral(r.Context(), *ref.ParentID)
		d.ParentSeen = err == nil
	}
	if ref.ActionDue != nil {
		d.Due = *ref.ActionDue
	}
	d.Changed = r.URL.Query().Get("status") != ""
	if r.Method == http.MethodPost {
		d.Failed, d.Form = r.PathValue("move"), r.PostForm
	}
	if d.Incoming && ref.NeedsAction && !d.ReadOnly {
		if d.Colleagues, err = u.app.Colleagues(r.Context(), ref.ToOrg); err != nil {
			u.fail(w, r, err)
			return
		}
	}
	party := referral.Receiver
	if !d.Incoming {
		party = referral.Sender
	}
	if ref.Status == string(referral.Requested) && party == referral.Receiver {
		ref.Status = string(referral.Received)
	}
	for _, rc := range []referral.ReasonCode{referral.NoCapacity, referral.NotEligible, referral.OutOfArea, referral.Duplicate, referral.FamilyRefused, referral.Other} {
		d.Reasons = append(d.Reasons, string(rc))
	}
	if !d.ReadOnly {
		for _, mv := range referral.Allowed(referral.State(ref.Status), party) {
			fields := moveFields[mv]
			if mv == referral.Accept && u.app.TakesPeopleIn(ref.Service) {
				fields = placementFields // a shelter takes the family in: which bed, until when, where
			}
			d.Actions = append(d.Actions, action{Move: string(mv), Fields: fields, Danger: mv == referral.Decline || mv == referral.Fail || mv == referral.Cancel})
		}
	}
	u.render(w, r, status, "referral", "", d, errKey)
}

func (u *UI) move(w http.ResponseWriter, r *http.Request) {
	id, err := uuid.Parse(r.PathValue("id"))
	mv := referral.Move(r.PathValue("move"))
	if err != nil || !slices.Contains(referral.Moves(), mv) || mv == referral.Receive {
		u.errorPage(w, r, http.StatusNotFound, "error.not_found")
		return
	}
	in := app.MoveInput{
		ReasonCode: r.PostFormValue("reason_code"), Reason: strings.TrimSpace(r.PostFormValue("reason")),
		Outcome: strings.TrimSpace(r.PostFormValue("outcome")), Note: strings.TrimSpace(r.PostFormValue("note")),
	}
	in.ToOrg, in.Service = offerOf(r, "offer")
	if bed := strings.TrimSpace(r.PostFormValue("bed")); bed != "" {
		in.Work = &schemas.Work{Placement: &schemas.Placement{
			Bed: bed, EndsOn: r.PostFormValue("ends_on"), Address: strings.TrimSpace(r.PostFormValue("address")),
		}}
	}
	if mv == referral.Forward {
		// The forwarded referral passes on the case's person key, if it
		// has one: the consent covers identity too.
		in.ConsentID, err = u.recordConsent(r, in.ToOrg, "", schemas.CategoryIdentity)
	}
	if err == nil {
		_, err = u.app.Move(r.Context(), id, mv, in)
	}
	if status, key := moveProblem(err); status != 0 {
		if status == http.StatusInternalServerError {
			u.log.Error("move failed", "referral_id", id, "move", mv, "err", err)
		}
		u.showReferral(w, r, status, key)
		return
	}
	http.Redirect(w, r, "/ui/referrals/"+id.String(), http.StatusSeeOther)
}

// moveProblem maps the service's errors to a status and a message.
func moveProblem(err error) (int, string) {
	switch {
	case err == nil:
		return 0, ""
	case errors.Is(err, app.ErrNotFound):
		return http.StatusNotFound, "error.not_found"
	case errors.Is(err, app.ErrConflict):
		return http.StatusConflict, "error.conflict"
	case errors.Is(err, app.ErrForbidden):
		return http.StatusForbidden, "error.forbidden"
	case errors.Is(err, app.ErrInvalid):
		return http.StatusUnprocessableEntity, "error.invalid"
	default:
		return http.StatusInternalServerError, "error.internal"
	}
}

// --- erasing a person (supervisors) ---

type eraseData struct {
	Erased int // referrals erased by the form just sent
}

func (u *UI) erasePage(w http.ResponseWriter, r *http.Request) {
	if p, _ := PrincipalFrom(r.Context()); p == nil || p.Role != RoleSupervisor {
		u.errorPage(w, r, http.StatusForbidden, "error.forbidden")
		return
	}
	n, _ := strconv.Atoi(r.URL.Query().Get("erased"))
	u.render(w, r, http.StatusOK, "erase", "erase", eraseData{Erased: n}, "")
}

// erase erases a person (mayDo lets supervisors only post here), and
// answers with a redirect, so a reload sends nothing twice.
func (u *UI) erase(w http.ResponseWriter, r *http.Request) {
	e, err := u.app.ErasePerson(r.Context(), strings.TrimSpace(r.PostFormValue("person_id")), r.PostFormValue("reason"))
	if errors.Is(err, app.ErrNotFound) {
		u.render(w, r, http.StatusNotFound, "erase", "erase", eraseData{}, "erase.none")
		return
	}
	if status, key := moveProblem(err); status != 0 {
		if status == http.StatusInternalServerError {
			u.log.Error("erase person failed", "err", err)
		}
		u.render(w, r, status, "erase", "erase", eraseData{}, key)
		return
	}
	http.Redirect(w, r, "/ui/erase?erased="+strconv.Itoa(len(e.Referrals)), http.StatusSeeOther)
}

// --- a new referral ---

type newData struct {
	Choices []choice
	// From are this node's organizations to refer on behalf of, for a
	// user who works for none of them and may pick; empty otherwise.
	From   []choice
	CaseID string
	// Form is what was typed, shown again after a failed form.
	Form url.Values
}

func (u *UI) newData(r *http.Request, caseID string) newData {
	t := u.tr(r)
	d := newData{Choices: u.choices(t), CaseID: caseID}
	if own := u.app.Organizations(); len(own) > 1 && app.OrgOf(r.Context()) == "" {
		for _, o := range own {
			d.From = append(d.From, choice{Label: u.orgLabel(t, o.ID), ID: o.ID})
		}
	}
	return d
}

func (u *UI) newPage(w http.ResponseWriter, r *http.Request) {
	c := r.URL.Query().Get("case")
	if id, err := uuid.Parse(c); err == nil {
		c = app.CaseNumber(id) // "refer this family elsewhere" names the case by its number
	}
	d := u.newData(r, c)
	d.Form = url.Values{"offer": {r.URL.Query().Get("offer")}}
	u.render(w, r, http.StatusOK, "new", "new", d, "")
}

// caseOf finds the case a new referral joins: by its number (one the
// user sees) or its id. Returns a reason a person can act on.
func (u *UI) caseOf(r *http.Request, s string) (uuid.UUID, string) {
	if id, err := uuid.Parse(s); err == nil {
		return id, ""
	}
	if _, ok := app.ParseCaseNumber(s); !ok {
		return uuid.Nil, "case: " + s + " is not a case number (such as 3MZ4K-7QX2D)"
	}
	cases, err := u.app.FindCases(r.Context(), s)
	if err != nil || len(cases) != 1 {
		return uuid.Nil, "case: no case " + s + " of yours is known here"
	}
	return cases[0].ID, ""
}

func (u *UI) create(w http.ResponseWriter, r *http.Request) {
	in := app.NewReferral{
		FromOrg: r.PostFormValue("from_org"),
		Note:    strings.TrimSpace(r.PostFormValue("note")), PersonID: strings.TrimSpace(r.PostFormValue("person_id")),
		Urgency: r.PostFormValue("urgency"),
	}
	in.ToOrg, in.Service = offerOf(r, "offer")
	d := u.newData(r, r.PostFormValue("case_id"))
	d.Form = r.PostForm
	if c := strings.TrimSpace(d.CaseID); c != "" {
		id, why := u.caseOf(r, c)
		if why != "" {
			u.render(w, r, http.StatusUnprocessableEntity, "new", "new", d, "error.invalid_detail", why)
			return
		}
		in.CaseID = id
	}
	if !directory.ValidID(in.ToOrg) || in.Service == "" || in.Note == "" {
		u.render(w, r, http.StatusUnprocessableEntity, "new", "new", d, "error.invalid")
		return
	}
	var identity []string
	if in.PersonID != "" {
		identity = append(identity, schemas.CategoryIdentity)
	}
	var err error
	in.ConsentID, err = u.recordConsent(r, in.ToOrg, in.PersonID, identity...)
	var ref app.Referral
	if err == nil {
		ref, err = u.app.CreateReferral(r.Context(), in)
	}
	if status, key := moveProblem(err); status != 0 {
		if status == http.StatusInternalServerError {
			u.log.Error("create referral failed", "err", err)
		}
		// The form comes back with what was typed, and the real reason.
		var args []any
		if status == http.StatusUnprocessableEntity || status == http.StatusConflict {
			key, args = "error.invalid_detail", []any{reasonOf(err)}
		}
		u.render(w, r, status, "new", "new", d, key, args...)
		return
	}
	http.Redirect(w, r, "/ui/referrals/"+ref.ID.String(), http.StatusSeeOther)
}

// reasonOf is what an application error says, without its kind.
func reasonOf(err error) string {
	for _, kind := range []error{app.ErrInvalid, app.ErrConflict} {
		if errors.Is(err, kind) {
			return strings.TrimPrefix(err.Error(), kind.Error()+": ")
		}
	}
	return err.Error()
}

// consentFieldData is what the "consent" template needs: the page's
// language and a prefix that keeps the fields' ids unique.
type consentFieldData struct {
	T  T
	ID string
	// Form is what was typed, shown again after a failed form.
	Form url.Values
}

func consentField(t T, id string, form ...url.Values) consentFieldData {
	d := consentFieldData{T: t, ID: id}
	if len(form) > 0 {
		d.Form = form[0]
	}
	return d
}

// offerFieldData is what the "offer" template needs: the page's language,
// the select's id and the organizations to choose from.
type offerFieldData struct {
	T       T
	ID      string
	Choices []choice
	// Selected is the offer chosen before a failed form.
	Selected string
}

func offerField(t T, id string, cs []choice, selected ...string) offerFieldData {
	d := offerFieldData{T: t, ID: id, Choices: cs}
	if len(selected) > 0 {
		d.Selected = selected[0]
	}
	return d
}

// recordConsent records the family's consent from the form's consent
// fields: to share a summary (and the extra categories) with organization
// to, until the end of the chosen day. A referral needs one; the consent stays on
// record even if the referral is then refused, as what the family agreed.
func (u *UI) recordConsent(r *http.Request, to, personID string, extra ...string) (uuid.UUID, error) {
	until, err := time.ParseInLocation("2006-01-02", r.PostFormValue("consent_until"), u.cfg.Location)
	if err != nil {
		return uuid.Nil, fmt.Errorf("%w: consent_until: pick the last day the consent is valid", app.ErrInvalid)
	}
	c, err := u.app.RecordConsent(r.Context(), app.NewConsent{
		GivenBy:        strings.TrimSpace(r.PostFormValue("consent_given_by")),
		PersonID:       personID,
		ToOrg:          to,
		Purpose:        strings.TrimSpace(r.PostFormValue("consent_purpose")),
		DataCategories: append([]string{schemas.CategorySummary}, extra...),
		ExpiresAt:      until.AddDate(0, 0, 1),
	})
	return c.ID, err
}
