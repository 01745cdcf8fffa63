// Package web is the caseworker's UI of an agency service and the sign-in
// in front of its HTTP API: server-rendered pages (html/template, with
// htmx embedded in the binary, so it works on a local network with no
// internet), live updates by server-sent events, four languages, sessions
// for people (passwords or OIDC), bearer tokens for agency systems, and
// roles (caseworker, supervisor, auditor).
//
// A node mounts it through core.Config.Web:
//
//	cfg.Web = web.Mount(web.Config{...})
package web

import (
	"context"
	"embed"
	"fmt"
	"html/template"
	"io/fs"
	"log/slog"
	"net/http"
	"slices"
	"strings"
	"time"
	_ "time/tzdata" // Asia/Almaty and Asia/Bishkek on machines without a zoneinfo database

	"github.com/danielgtaylor/huma/v2"

	"github.com/refbus/refbus/services/internal/core/api"
	"github.com/refbus/refbus/services/internal/core/app"
)

// Config is how the UI and the sign-in are set up.
type Config struct {
	// SessionTTL is how long a sign-in lasts (default 10 hours: a working
	// day, then sign in again).
	SessionTTL time.Duration
	// Location is the time zone dates are shown in (default Asia/Almaty):
	// the network's (REFBUS_TIME_ZONE).
	Location *time.Location
	// Lang is the language of a page before sign-in when the browser
	// asks for none of the UI's: the network's (REFBUS_LANGUAGE; default
	// ru).
	Lang string
	// APIKey signs and checks the bearer tokens of this agency's systems
	// (HS256, at least 32 bytes); empty accepts no bearer token.
	APIKey []byte `json:"-"`
	// TokenMaxTTL is the longest a bearer token may be valid for, from
	// its iat to its exp (default DefaultTokenMaxTTL,
	// REFBUS_TOKEN_MAX_TTL): a longer one is refused.
	TokenMaxTTL time.Duration
	// OIDC, if set, signs people in through the agency's identity provider.
	OIDC *OIDCConfig
	// InsecureCookies drops the Secure flag of cookies, for a service
	// reached over plain HTTP other than on localhost. Never in production.
	InsecureCookies bool
	// Poll is how often the live updates look for changes (default 1s).
	Poll time.Duration
	// Logger is where failures go (default: discarded).
	Logger *slog.Logger
}

// UI is one agency's caseworker UI.
type UI struct {
	cfg    Config
	app    *app.App
	agency string
	log    *slog.Logger
	cats   map[string]catalogue
	pages  map[string]*template.Template
	oidc   *oidcClient
	watch  *watcher
	tries  throttle
	// ops are the node's dead letters; nil shows none.
	ops api.Ops
	// stopped closes when the service stops, ending the event streams,
	// which would otherwise hold the HTTP server's shutdown.
	stopped <-chan struct{}
}

//go:embed templates/*.html
var templateFiles embed.FS

//go:embed static
var staticFiles embed.FS

// Mount returns the hook core.Config.Web takes: it builds the UI of the
// service, documents its routes in the service's OpenAPI document, and
// wraps the API so that only the agency's own people and systems reach it.
func Mount(cfg Config) func(ctx context.Context, a *app.App, ops api.Ops, doc huma.API, next http.Handler) (http.Handler, error) {
	return func(ctx context.Context, s *app.App, ops api.Ops, doc huma.API, next http.Handler) (http.Handler, error) {
		u, err := New(ctx, cfg, s)
		if err != nil {
			return nil, err
		}
		u.ops = ops
		Document(doc.OpenAPI())
		return u.Handler(next), nil
	}
}

// New builds the UI of service s. Its event streams end when ctx does: pass
// the context the service runs under.
func New(ctx context.Context, cfg Config, s *app.App) (*UI, error) {
	if cfg.SessionTTL == 0 {
		cfg.SessionTTL = 10 * time.Hour
	}
	if cfg.TokenMaxTTL == 0 {
		cfg.TokenMaxTTL = DefaultTokenMaxTTL
	}
	if cfg.Lang == "" {
		cfg.Lang = Langs[0]
	}
	if !slices.Contains(Langs, cfg.Lang) {
		return nil, fmt.Errorf("web: language %q (REFBUS_LANGUAGE): one of %v", cfg.Lang, Langs)
	}
	if cfg.Location == nil {
		loc, err := time.LoadLocation("Asia/Almaty")
		if err != nil {
			return nil, fmt.Errorf("time zone: %w", err)
		}
		cfg.Location = loc
	}
	if cfg.Poll == 0 {
		cfg.Poll = time.Second
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if len(cfg.APIKey) > 0 && len(cfg.APIKey) < 32 {
		return nil, fmt.Errorf("web: the API key must have at least 32 bytes, not %d", len(cfg.APIKey))
	}
	u := &UI{cfg: cfg, app: s, agency: s.Node(), log: cfg.Logger.With("component", "web"), stopped: ctx.Done()}
	var err error
	if u.cats, err = loadCatalogues(); err != nil {
		return nil, err
	}
	if u.pages, err = parsePages(); err != nil {
		return nil, err
	}
	if cfg.OIDC != nil {
		if u.oidc, err = newOIDC(ctx, *cfg.OIDC); err != nil {
			return nil, err
		}
	}
	u.watch = newWatcher(s, cfg.Poll, u.log)
	return u, nil
}

// parsePages parses each page with the layout around it.
func parsePages() (map[string]*template.Template, error) {
	names, err := fs.Glob(templateFiles, "templates/*.html")
	if err != nil {
		return nil, err
	}
	out := map[string]*template.Template{}
	for _, n := range names {
		name := n[len("templates/") : len(n)-len(".html")]
		if name == "layout" {
			continue
		}
		t, err := template.New(name).Funcs(template.FuncMap{"consentField": consentField, "offerField": offerField, "caseNumber": app.CaseNumber}).ParseFS(templateFiles, "templates/layout.html", n)
		if err != nil {
			return nil, fmt.Errorf("template %s: %w", name, err)
		}
		out[name] = t
	}
	return out, nil
}

// route is one route of the UI, as served and as documented.
type route struct {
	method, pattern, id, summary, contentType string
	handler                                   func(*UI, http.ResponseWriter, *http.Request)
}

// routes are every route of the UI; document puts each in the OpenAPI
// document, and a test checks that every link and form of the pages is
// one of them.
var routes = []route{
	{"GET", "/ui/login", "ui-login", "Sign-in page", "text/html", (*UI).loginPage},
	{"POST", "/ui/login", "ui-login-submit", "Sign in with user name and password (form)", "text/html", (*UI).login},
	{"POST", "/ui/logout", "ui-logout", "Sign out: ends the session", "text/html", (*UI).logout},
	{"GET", "/ui/oidc/login", "ui-oidc-login", "Sign in through the agency's OIDC provider", "text/html", (*UI).oidcLogin},
	{"GET", "/ui/oidc/callback", "ui-oidc-callback", "Where the OIDC provider returns after sign-in", "text/html", (*UI).oidcCallback},
	{"POST", "/ui/lang", "ui-lang", "Choose the UI's language (form: lang = ru, kk, ky or en)", "text/html", (*UI).setLang},
	{"GET", "/ui/action", "ui-action", "Needs-action view: referrals this agency received that wait for its move, the nearest deadline first (filters: mine, org, after)", "text/html", (*UI).actionPage},
	{"GET", "/ui/inbox", "ui-inbox", "Inbox page: referrals to this agency (to the user's organization, for a user of one), with counts and filters (org, status, service, overdue, from, to, before)", "text/html", (*UI).inboxPage},
	{"GET", "/ui/sent", "ui-sent", "Sent page: this agency's referrals with their live status (same filters)", "text/html", (*UI).sentPage},
	{"GET", "/ui/new", "ui-new", "New referral form", "text/html", (*UI).newPage},
	{"POST", "/ui/referrals", "ui-create", "Send a new referral (form: offer = to_org/service, from_org, note, case_id, person_id)", "text/html", (*UI).create},
	{"GET", "/ui/referrals/{id}", "ui-referral", "Referral page with its case timeline and the forms of the moves open now", "text/html", (*UI).referralPage},
	{"GET", "/ui/referrals/{id}/actions", "ui-referral-actions", "The forms of a referral's moves, for the page's live refresh: 204 while the referral is still in ?status=", "text/html", (*UI).actionsPart},
	{"POST", "/ui/referrals/{id}/assign", "ui-assign", "Assign a referral this agency received (form: to = a user name, me, or empty for no one; back = the page to return to)", "text/html", (*UI).assign},
	{"GET", "/ui/cases/{id}", "ui-case", "Case page: the family's chain of help as this organization may see it, with the case's number", "text/html", (*UI).casePage},
	{"GET", "/ui/directory", "ui-directory", "Directory page: the organizations of the network to refer to, found by region and service, with each service's eligibility, area, languages and free places", "text/html", (*UI).directoryPage},
	{"GET", "/ui/search", "ui-search", "Search page: find a case by its number or a national id", "text/html", (*UI).searchPage},
	{"POST", "/ui/search", "ui-search-submit", "Find a case (form: q = a case number or a national id; one case redirects to its page)", "text/html", (*UI).search},
	{"POST", "/ui/referrals/{id}/{move}", "ui-move", "Make a move on a referral (form: reason_code, reason, outcome, note, offer = to_org/service)", "text/html", (*UI).move},
	{"GET", "/ui/dashboard", "ui-dashboard", "Supervisors' dashboard (supervisors and auditors): open and overdue referrals by organization, time to accept and to complete, outcomes by service, referrals by week, as charts and tables (filters: org, from, to)", "text/html", (*UI).dashboardPage},
	{"GET", "/ui/dashboard.csv", "ui-dashboard-csv", "The dashboard's figures as CSV, one figure a row (same filters)", "text/csv", (*UI).dashboardCSV},
	{"GET", "/ui/erase", "ui-erase", "Erase-a-person page (supervisors)", "text/html", (*UI).erasePage},
	{"POST", "/ui/erase", "ui-erase-submit", "Erase a person on their request (supervisors; form: person_id, reason)", "text/html", (*UI).erase},
	{"GET", "/ui/users", "ui-users", "Users page (supervisors): the node's users (a supervisor of one organization: its users), with a form to make one", "text/html", (*UI).usersPage},
	{"POST", "/ui/users", "ui-users-create", "Make a local user (supervisors; form: username, name, role, org, password of 12 characters or more)", "text/html", (*UI).createUser},
	{"GET", "/ui/users/{name}", "ui-user", "One user's page (supervisors): role, organization, password, disabling", "text/html", (*UI).userPage},
	{"POST", "/ui/users/{name}/role", "ui-user-role", "Change a local user's role and organization (supervisors; form: role, org); a changed role ends their sessions", "text/html", (*UI).setUserRole},
	{"POST", "/ui/users/{name}/password", "ui-user-password", "Give a local user a new password (supervisors; form: password); ends their sessions", "text/html", (*UI).setUserPassword},
	{"POST", "/ui/users/{name}/disable", "ui-user-disable", "Disable a user (supervisors, not themselves): no sign-in, sessions end, bearer tokens naming them refused", "text/html", (*UI).disableUser},
	{"POST", "/ui/users/{name}/enable", "ui-user-enable", "Let a disabled user sign in again (supervisors)", "text/html", (*UI).enableUser},
	{"GET", "/ui/dead-letters", "ui-dead-letters", "Dead letters page (supervisors; auditors read only): events the bus stopped redelivering, with the reason", "text/html", (*UI).deadLettersPage},
	{"POST", "/ui/dead-letters/redrive", "ui-dead-letters-redrive", "Re-drive the dead letters (supervisors): apply each again, at most once", "text/html", (*UI).redrive},
	{"GET", "/ui/access-log", "ui-access-log", "Case access log (auditors and supervisors): who opened which case and when, newest first (filters: case, user, before)", "text/html", (*UI).accessLogPage},
	{"GET", "/ui/events", "ui-events", "Server-sent events: `changed` whenever a referral of this agency may have changed", "text/event-stream", (*UI).events},
	{"GET", "/ui/static/{file...}", "ui-static", "The UI's scripts and style sheet, embedded in the binary", "application/octet-stream", (*UI).static},
}

// Handler serves the UI and, behind the same sign-in, next (the API).
func (u *UI) Handler(next http.Handler) http.Handler {
	mux := http.NewServeMux()
	for _, rt := range routes {
		mux.HandleFunc(rt.method+" "+rt.pattern, func(w http.ResponseWriter, r *http.Request) { rt.handler(u, w, r) })
	}
	mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, "/ui/inbox", http.StatusSeeOther)
	})
	mux.HandleFunc("GET /ui/{$}", func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, "/ui/inbox", http.StatusSeeOther)
	})
	mux.HandleFunc("GET /favicon.ico", http.NotFound)
	mux.Handle("/", next)
	// Browsers say where a request comes from (Sec-Fetch-Site, Origin):
	// a form another site posts is refused before it reaches anything.
	csrf := http.NewCrossOriginProtection()
	csrf.SetDenyHandler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		u.deny(w, r, http.StatusForbidden)
	}))
	return csrf.Handler(securityHeaders(u.guard(mux)))
}

// securityHeaders keeps pages out of frames and scripts to our own.
func securityHeaders(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("Referrer-Policy", "same-origin")
		if strings.HasPrefix(r.URL.Path, "/ui/") {
			h.Set("Content-Security-Policy", "default-src 'self'; frame-ancestors 'none'; form-action 'self'")
			h.Set("Cache-Control", "no-store")
		}
		next.ServeHTTP(w, r)
	})
}

// Document adds the UI's routes to the API's OpenAPI document, as Mount
// does (for tools that need the document without a running node). They
// need the document's security (a session), but for the public ones.
func Document(oapi *huma.OpenAPI) {
	oapi.Tags = append(oapi.Tags, &huma.Tag{Name: "caseworker UI", Description: "The caseworkers' pages, forms and live updates."})
	for _, rt := range routes {
		op := &huma.Operation{
			OperationID: rt.id, Method: rt.method, Path: rt.pattern, Summary: rt.summary, Tags: []string{"caseworker UI"},
			Responses: map[string]*huma.Response{"200": {
				Description: "The page, or a redirect (303) after a form.",
				Content:     map[string]*huma.MediaType{rt.contentType: {}},
			}, "4XX": {
				Description: "A page that says what is wrong: not signed in, or a wrong password (401; a page asked for without a session redirects to the sign-in instead), another agency's or not the role's (403), not found (404), not allowed now (409), an incomplete form (422), too many sign-in attempts (429).",
				Content:     map[string]*huma.MediaType{"text/html": {}},
			}},
		}
		if publicPath(rt.pattern) {
			op.Security = []map[string][]string{}
		}
		if rt.pattern == "/ui/static/{file...}" {
			op.Path = "/ui/static/{file}"
		}
		for _, p := range []string{"id", "move", "file", "name"} {
			if strings.Contains(op.Path, "{"+p+"}") {
				op.Parameters = append(op.Parameters, &huma.Param{Name: p, In: "path", Required: true, Schema: &huma.Schema{Type: "string"}})
			}
		}
		oapi.AddOperation(op)
	}
}

// static serves the embedded scripts and style sheet. Their names carry
// their versions, so browsers may keep them.
func (u *UI) static(w http.ResponseWriter, r *http.Request) {
	sub, _ := fs.Sub(staticFiles, "static")
	w.Header().Set("Cache-Control", "public, max-age=86400")
	http.StripPrefix("/ui/static/", http.FileServerFS(sub)).ServeHTTP(w, r)
}
