package scenario_test

import (
	_ "embed"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/chromedp"
	"github.com/google/uuid"

	"github.com/refbus/refbus/pkg/referral"
	"github.com/refbus/refbus/schemas"

	"github.com/refbus/refbus/services/internal/core"
	"github.com/refbus/refbus/services/internal/core/app"
	"github.com/refbus/refbus/services/internal/core/web"
)

// axeSource is axe-core, from the npm registry (testdata/axe/README.md).
//
//go:embed testdata/axe/axe.min.js
var axeSource string

// axeJS runs axe-core on the page and lists its serious and critical
// violations, one line each: the rule, where, and where to read about it.
const axeJS = `(async () => {
  const r = await axe.run(document, {resultTypes: ["violations"]});
  return r.violations.filter(v => v.impact === "serious" || v.impact === "critical").map(v =>
    v.id + " (" + v.impact + "): " + v.help + "; " + v.helpUrl + "\n      at " +
    v.nodes.map(n => n.target.join(" ") + (n.failureSummary ? " — " + n.failureSummary.replace(/\s+/g, " ") : "")).join("\n      at "));
})()`

// axe fails the test if axe-core finds a serious or critical problem on
// the page open in the tab. The page's Content-Security-Policy keeps out
// any script but its own; the DevTools protocol is not bound by it, so
// axe-core goes in that way, and no page has to serve it.
func (tb *tab) axe(what string) {
	tb.t.Helper()
	var loaded bool
	tb.run("load axe-core into "+what, chromedp.Evaluate(`typeof axe === "object"`, &loaded))
	if !loaded {
		tb.run("load axe-core into "+what, chromedp.Evaluate(axeSource+"\n;true", &loaded))
	}
	var bad []string
	tb.run("run axe-core on "+what, chromedp.Evaluate(axeJS, &bad, func(p *runtime.EvaluateParams) *runtime.EvaluateParams {
		return p.WithAwaitPromise(true)
	}))
	if len(bad) > 0 {
		tb.t.Errorf("axe-core finds on %s:\n  %s", what, strings.Join(bad, "\n  "))
	}
}

// a11yPage is a page the accessibility test opens, as user ("": signed
// out). In path, {received}, {accepted}, {sent}, {placed} and {case}
// stand for the test's referrals and case (see TestBrowserAccessibility).
// With a shot, `make screenshots` saves the page, in English, as
// docs/<shot>.png.
type a11yPage struct{ user, path, shot string }

// a11yPages are the pages TestBrowserAccessibility checks in every
// language; a new page of the UI is one more line here.
var a11yPages = []a11yPage{
	{"", "/ui/login", ""},
	{"social-supervisor", "/ui/inbox", ""},
	{"social-supervisor", "/ui/inbox?overdue=1", ""},
	{"social-supervisor", "/ui/sent", ""},
	{"social-supervisor", "/ui/new", ""},
	{"social-supervisor", "/ui/new?case={case}", ""},
	{"social-supervisor", "/ui/erase", ""},
	{"social-supervisor", "/ui/referrals/{accepted}", ""},
	{"social-supervisor", "/ui/referrals/{sent}", ""},
	{"social-supervisor", "/ui/referrals/{placed}", ""},
	{"social-supervisor", "/ui/referrals/00000000-0000-4000-8000-000000000000", ""}, // the error page
	{"kz-zhan-saya-caseworker", "/ui/inbox", ""},
	{"kz-zhan-saya-caseworker", "/ui/referrals/{received}", ""},
	{"ngo-auditor", "/ui/referrals/{placed}", ""},
	{"kz-zhan-saya-caseworker", "/ui/action", "needs-action"},
	{"social-supervisor", "/ui/cases/{case}", "case"},
	{"social-supervisor", "/ui/search", ""},
	{"social-supervisor", "/ui/directory", ""},
	{"social-supervisor", "/ui/dashboard", "dashboard"},
	{"social-supervisor", "/ui/users", ""},
	{"social-supervisor", "/ui/dead-letters", ""},
	{"social-supervisor", "/ui/access-log", ""},
}

// TestBrowserAccessibility runs axe-core on every page of the UI
// (a11yPages), in each of its four languages, in a browser that speaks
// the language: no serious or critical violation of WCAG 2.1 AA.
// The pages show referrals in every state that changes them: waiting to
// be accepted (the shelter's placement form), accepted (the forward form
// with its consent), overdue, completed with a placement.
func TestBrowserAccessibility(t *testing.T) {
	t.Parallel()
	chromium(t)
	n := uiNetwork(t, []demoNode{kz[2], kz[3]}, func(c *core.Config) {
		c.SLAs = map[string]app.SLA{"crisis_shelter": {Accept: time.Nanosecond}, "": {Accept: time.Hour}}
		c.SLATick = 100 * time.Millisecond
	})
	// The API wants a signed-in caller here (the UI is on): the app is
	// called as the UI would.
	refer := func(from, to, service string, caseID uuid.UUID) app.Referral {
		r, err := n.App(from).CreateReferral(t.Context(), app.NewReferral{ToOrg: to, Service: service, Note: "The mother asks for help.", CaseID: caseID, ConsentID: n.Consent(from, to)})
		if err != nil {
			t.Fatalf("%s refers to %s: %v", from, to, err)
		}
		return r
	}
	move := func(at string, r app.Referral, mv referral.Move, in app.MoveInput) {
		if _, err := n.App(at).Move(t.Context(), r.ID, mv, in); err != nil {
			t.Fatalf("%s %s: %v", at, mv, err)
		}
	}
	received := refer("social", "kz-zhan-saya", "crisis_shelter", uuid.Nil)
	accepted := refer("ngo", "kz-almaty-fsc-almaly", "family_support", received.CaseID)
	placed := refer("social", "kz-zhan-saya", "crisis_shelter", received.CaseID)
	n.Both(accepted, "received")
	move("social", accepted, referral.Accept, app.MoveInput{})
	n.Both(placed, "received")
	move("ngo", placed, referral.Accept, app.MoveInput{Work: &schemas.Work{Placement: &schemas.Placement{Bed: "B-4", Address: "Almaty", EndsOn: time.Now().AddDate(0, 2, 0).Format(time.DateOnly)}}})
	move("ngo", placed, referral.Start, app.MoveInput{})
	move("ngo", placed, referral.Complete, app.MoveInput{Outcome: "Placed with both children."})
	n.Both(placed, "completed")
	ids := strings.NewReplacer("{received}", received.ID.String(), "{accepted}", accepted.ID.String(),
		"{sent}", received.ID.String(), "{placed}", placed.ID.String(), "{case}", received.CaseID.String())
	base := map[string]string{"social": n.Node("social").HTTP.URL, "ngo": n.Node("ngo").HTTP.URL}

	for _, lang := range web.Langs {
		t.Run(lang, func(t *testing.T) {
			b := browser(t, lang)
			tabs := map[string]*tab{}
			for _, pg := range a11yPages {
				node := "social"
				if strings.HasPrefix(pg.user, "kz-zhan-saya") || strings.HasPrefix(pg.user, "ngo") {
					node = "ngo"
				}
				tb := tabs[pg.user]
				if tb == nil {
					tb = newTab(t, b, base[node])
					tabs[pg.user] = tb
					if pg.user != "" {
						// A user's language is the one chosen on the
						// sign-in page (kept from then on).
						tb.open("/ui/login")
						tb.run("choose "+lang,
							chromedp.WaitVisible(`html[lang="`+lang+`"]`, chromedp.ByQuery),
							chromedp.SetValue("#lang", lang, chromedp.ByQuery),
							chromedp.Submit("#lang", chromedp.ByQuery),
							chromedp.WaitVisible("#username", chromedp.ByQuery))
						tb.signIn(pg.user)
					}
				}
				path := ids.Replace(pg.path)
				tb.open(path)
				// Signed out, the browser asks for its language and gets
				// it; signed in, the page is in the user's language.
				tb.run("the page is in "+lang, chromedp.WaitVisible(`html[lang="`+lang+`"]`, chromedp.ByQuery))
				tb.axe(lang + " " + pg.user + " " + pg.path)
				if pg.shot != "" && lang == "en" {
					tb.shot(pg.shot)
				}
			}
			// The browser is of the language, so its date fields show
			// days as its people write them: the day first.
			var day string
			tab := tabs["social-supervisor"]
			tab.run("the browser's days", chromedp.Evaluate(`new Date(2026, 11, 31).toLocaleDateString()`, &day))
			if !strings.HasPrefix(day, "31") {
				t.Errorf("the browser writes 31 December 2026 as %q: not day first", day)
			}
			// A work record's days are <time>s too.
			tab.open(ids.Replace("/ui/referrals/{placed}"))
			var days int
			tab.run("the placement's days", chromedp.Evaluate(`document.querySelectorAll("#work time[datetime]").length`, &days))
			if days != 2 {
				t.Errorf("the placement shows %d <time> days, want 2 (from, until)", days)
			}
		})
	}
}
