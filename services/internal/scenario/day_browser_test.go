package scenario_test

import (
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/google/uuid"

	"github.com/refbus/refbus/schemas"
	"github.com/refbus/refbus/services/internal/core"
	"github.com/refbus/refbus/services/internal/core/app"
	"github.com/refbus/refbus/services/internal/core/nodetest"
)

// TestBrowserCaseworkersDay walks a shelter caseworker's morning in a real
// browser: the needs-action view puts the shelter's two-hour referral
// before the legal help of three days, with its countdown; a reason typed
// into a form stays while other referrals come and go, and the form gives
// way, without a reload, once the sender cancels; the family's case page
// shows the chain of help across the school, the family support centre
// and the shelter as the family support centre may see it.
func TestBrowserCaseworkersDay(t *testing.T) {
	t.Parallel()
	b := browser(t)
	n := uiNetwork(t, kz, func(c *core.Config) {
		c.SLAs = map[string]app.SLA{"crisis_shelter": {Accept: 2 * time.Hour}, "legal_help": {Accept: 72 * time.Hour}}
	})
	ctx := t.Context()
	refer := func(from, fromOrg, to, service string) app.Referral {
		t.Helper()
		r, err := n.App(from).CreateReferral(ctx, app.NewReferral{FromOrg: fromOrg, ToOrg: to, Service: service, Note: "the family needs help", ConsentID: consentTo(t, n, from, fromOrg, to)})
		if err != nil {
			t.Fatal(err)
		}
		return r
	}
	legal := refer("social", "kz-almaty-fsc-almaly", "kz-zhan-saya", "legal_help")
	school := refer("education", "kz-almaty-school-12", "kz-almaty-fsc-almaly", "family_support")
	nodetest.Eventually(t, 30*time.Second, n.WantStatus("social", school.ID, "received"))
	shelter, err := n.App("social").Move(ctx, school.ID, "forward", app.MoveInput{ToOrg: "kz-zhan-saya", Service: "crisis_shelter", Note: "a safe place tonight",
		ConsentID: consentTo(t, n, "social", "kz-almaty-fsc-almaly", "kz-zhan-saya")})
	if err != nil {
		t.Fatal(err)
	}
	nodetest.Eventually(t, 30*time.Second, n.WantStatus("ngo", *shelter.ForwardedTo, "received"))
	nodetest.Eventually(t, 30*time.Second, n.WantStatus("ngo", legal.ID, "received"))

	sh := newTab(t, b, n.Node("ngo").HTTP.URL)
	sh.signIn("kz-zhan-saya-caseworker")
	sh.open("/ui/action")
	var order []string
	var left string
	sh.run("read the needs-action view",
		chromedp.WaitVisible(`tr[data-referral]`, chromedp.ByQuery),
		chromedp.Evaluate(`[...document.querySelectorAll("tr[data-referral]")].map(r => r.dataset.referral)`, &order),
		chromedp.Text(`tr[data-referral] .left`, &left, chromedp.ByQuery),
	)
	if want := []string{shelter.ForwardedTo.String(), legal.ID.String()}; strings.Join(order, " ") != strings.Join(want, " ") {
		t.Fatalf("needs action in the browser: %v, want the shelter's first: %v", order, want)
	}
	if !regexp.MustCompile(`^через (1 ч 59|2 ч 0) мин$`).MatchString(strings.TrimSpace(left)) || !strings.Contains(sh.html(), "badge-urgent") {
		t.Errorf("the shelter's referral shows no countdown (%q) or no urgency", left)
	}
	sh.a11y()
	sh.shot("needs-action")

	// A reason typed into the decline form of the legal help referral.
	sh.open("/ui/referrals/" + legal.ID.String())
	const typed = "No lawyer is free this week"
	sh.run("type a reason", chromedp.WaitVisible("#decline-reason", chromedp.ByQuery), chromedp.SendKeys("#decline-reason", typed, chromedp.ByQuery))
	// Another referral arrives meanwhile: the live refresh of the forms,
	// once it has been answered, keeps the text.
	sh.run("count the forms' refreshes", chromedp.Evaluate(`window.refreshed = 0;
		document.body.addEventListener("htmx:afterRequest", e => { if (e.detail.elt.id === "actions") window.refreshed++ }); true`, nil))
	refer("social", "kz-almaty-fsc-almaly", "kz-zhan-saya", "psychological_help")
	sh.run("the forms are refreshed", chromedp.Poll("window.refreshed > 0", nil, chromedp.WithPollingTimeout(30*time.Second)))
	var kept string
	sh.run("the typed reason stays", chromedp.Value("#decline-reason", &kept, chromedp.ByQuery))
	if kept != typed {
		t.Fatalf("after another referral came, the reason reads %q, want %q", kept, typed)
	}
	// The sender cancels: the forms give way without a reload.
	if _, err := n.App("social").Move(ctx, legal.ID, "cancel", app.MoveInput{Reason: "the family moved to Astana"}); err != nil {
		t.Fatal(err)
	}
	sh.run("the forms follow the cancellation", chromedp.WaitVisible("#changed", chromedp.ByQuery), chromedp.WaitNotPresent("#form-decline", chromedp.ByQuery))

	// The family support centre's case page: the school's referral in,
	// its own to the shelter out.
	so := newTab(t, b, n.Node("social").HTTP.URL)
	so.signIn("kz-almaty-fsc-almaly-caseworker")
	so.open("/ui/cases/" + school.CaseID.String())
	var entries []string
	so.run("read the case page",
		chromedp.WaitVisible("ol.chain", chromedp.ByQuery),
		chromedp.Evaluate(`[...document.querySelectorAll("ol.chain li[data-referral]")].map(r => r.dataset.referral)`, &entries),
	)
	if strings.Join(entries, " ") != school.ID.String()+" "+shelter.ForwardedTo.String() {
		t.Errorf("the case page shows %v, want the school's referral and the forward", entries)
	}
	if h := so.html(); !strings.Contains(h, app.CaseNumber(school.CaseID)) {
		t.Error("the case page does not show the case's number")
	}
	so.a11y()
	so.shot("case")
}

// consentTo records the family's consent for organization fromOrg of
// node from to share a summary with organization to.
func consentTo(t *testing.T, n *nodetest.Network, from, fromOrg, to string) uuid.UUID {
	t.Helper()
	c, err := n.App(from).RecordConsent(app.WithOrg(t.Context(), fromOrg), app.NewConsent{GivenBy: "the mother", ToOrg: to, Purpose: "help for the family",
		DataCategories: []string{schemas.CategorySummary}, ExpiresAt: time.Now().Add(24 * time.Hour)})
	if err != nil {
		t.Fatal(err)
	}
	return c.ID
}
