package web_test

import (
	"context"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/refbus/refbus/schemas"
	"github.com/refbus/refbus/services/internal/core"
	"github.com/refbus/refbus/services/internal/core/app"
	"github.com/refbus/refbus/services/internal/core/nodetest"
)

// referWith sends a referral as n.refer does, with a person and an
// urgency.
func (n *network) referWith(from, to, service, note, personID, urgency string) app.Referral {
	n.t.Helper()
	ctx := context.Background()
	cats := []string{schemas.CategorySummary}
	if personID != "" {
		cats = append(cats, schemas.CategoryIdentity)
	}
	c, err := n.App(from).RecordConsent(ctx, app.NewConsent{GivenBy: "the mother", PersonID: personID, ToOrg: to, Purpose: "help for the family",
		DataCategories: cats, ExpiresAt: time.Now().Add(48 * time.Hour)})
	if err != nil {
		n.t.Fatal(err)
	}
	r, err := n.App(from).CreateReferral(ctx, app.NewReferral{ToOrg: to, Service: service, Note: note, ConsentID: c.ID, PersonID: personID, Urgency: urgency})
	if err != nil {
		n.t.Fatal(err)
	}
	nodetest.Eventually(n.t, 30*time.Second, n.WantStatus(to, r.ID, "received"))
	return r
}

// rowsOf are the referral ids of a list page's rows, in order.
func rowsOf(body string) []string {
	var out []string
	for _, m := range regexp.MustCompile(`<tr class="[^"]*" data-referral="([0-9a-f-]{36})"`).FindAllStringSubmatch(body, -1) {
		out = append(out, m[1])
	}
	return out
}

// The needs-action view shows what the receiving organization has to do,
// the nearest deadline first, with the deadline the sender set, the
// referrer's urgency, what nobody opened yet, and who it is assigned to.
func TestNeedsActionByDeadline(t *testing.T) {
	t.Parallel()
	slas := map[string]app.SLA{"crisis_shelter": {Accept: 2 * time.Hour}, "legal_help": {Accept: 72 * time.Hour}, "psychological_help": {Accept: 5 * time.Hour, Complete: 48 * time.Hour}}
	n := newNetworkWith(t, nil, func(c *core.Config) { c.SLAs = slas }, "social", "ngo")
	ctx := context.Background()
	legal := n.referWith("social", "ngo", "legal_help", "court papers", "", "")
	shelter := n.referWith("social", "ngo", "crisis_shelter", "a safe place tonight", "", "")
	psych := n.referWith("social", "ngo", "psychological_help", "the children", "", schemas.Urgent)
	done := n.referWith("social", "ngo", "legal_help", "cancelled before", "", "")
	if _, err := n.App("social").Move(ctx, done.ID, "cancel", app.MoveInput{Reason: "the family moved"}); err != nil {
		t.Fatal(err)
	}
	nodetest.Eventually(t, 30*time.Second, n.WantStatus("ngo", done.ID, "cancelled"))

	// The receiver keeps the sender's deadline, and the urgency: a crisis
	// shelter is urgent by default, legal help routine.
	got, err := n.App("ngo").Referral(ctx, shelter.ID)
	if err != nil {
		t.Fatal(err)
	}
	if got.ActionDue == nil || got.ActionDue.Sub(shelter.CreatedAt).Round(time.Minute) != 2*time.Hour {
		t.Errorf("shelter referral due %v at the receiver, want 2h after %v", got.ActionDue, shelter.CreatedAt)
	}
	if got.Urgency != schemas.Urgent {
		t.Errorf("crisis shelter referral is %q, want urgent by default", got.Urgency)
	}
	if l, _ := n.App("ngo").Referral(ctx, legal.ID); l.Urgency != schemas.Routine {
		t.Errorf("legal help referral is %q, want routine", l.Urgency)
	}

	if err := n.App("ngo").SetLanguage(ctx, "ngo-caseworker", "en"); err != nil {
		t.Fatal(err)
	}
	c := n.signIn("ngo", "ngo-caseworker")
	res, body := c.get("/ui/action")
	wantStatus(t, res, http.StatusOK)
	want := []string{shelter.ID.String(), psych.ID.String(), legal.ID.String()}
	if got := rowsOf(body); strings.Join(got, " ") != strings.Join(want, " ") {
		t.Fatalf("needs action shows %v, want by deadline %v (the cancelled one not at all)", got, want)
	}
	wantContains(t, body, "<title>(3) Needs action", "New referrals: 3", "accept by ", "Urgent", legal.CaseNumber)
	if !regexp.MustCompile(`<span class="left">in (1 h 59|2 h 0) min</span>`).MatchString(rowHTML(body, shelter.ID)) {
		t.Errorf("the shelter's row does not count down its two hours:\n%s", rowHTML(body, shelter.ID))
	}

	// Opening a referral makes it no longer new; the count follows.
	wantStatus(t, must(c.get("/ui/referrals/"+shelter.ID.String())), http.StatusOK)
	_, body = c.get("/ui/action")
	wantContains(t, body, "<title>(2) Needs action")
	if strings.Contains(rowHTML(body, shelter.ID), "badge-new") {
		t.Error("an opened referral is still shown as new")
	}

	// "Take it" assigns to me; mine shows only mine.
	res, _ = c.form("/ui/referrals/"+legal.ID.String()+"/assign", url.Values{"to": {"me"}, "back": {"/ui/action"}})
	wantStatus(t, res, http.StatusSeeOther)
	if res.Header.Get("Location") != "/ui/action" {
		t.Errorf("assign goes back to %q", res.Header.Get("Location"))
	}
	_, body = c.get("/ui/action?mine=1")
	if got := rowsOf(body); len(got) != 1 || got[0] != legal.ID.String() {
		t.Errorf("mine shows %v, want only %s", got, legal.ID)
	}
	// An auditor may not be assigned, nor assign.
	res, _ = c.form("/ui/referrals/"+psych.ID.String()+"/assign", url.Values{"to": {"ngo-auditor"}})
	wantStatus(t, res, http.StatusUnprocessableEntity)
	a := n.signIn("ngo", "ngo-auditor")
	res, _ = a.form("/ui/referrals/"+psych.ID.String()+"/assign", url.Values{"to": {"me"}})
	if res.StatusCode != http.StatusForbidden {
		t.Errorf("auditor assigns: %s", res.Status)
	}

	// Accepting moves the deadline to completion's; ending takes it off.
	if _, err := n.App("ngo").Move(ctx, psych.ID, "accept", app.MoveInput{}); err != nil {
		t.Fatal(err)
	}
	p, _ := n.App("ngo").Referral(ctx, psych.ID)
	if p.ActionDue == nil || time.Until(*p.ActionDue).Round(time.Hour) != 48*time.Hour {
		t.Errorf("accepted referral due %v, want in 48h (complete within)", p.ActionDue)
	}
	if _, err := n.App("ngo").Move(ctx, legal.ID, "decline", app.MoveInput{ReasonCode: "out_of_area", Reason: "another city"}); err != nil {
		t.Fatal(err)
	}
	_, body = c.get("/ui/action")
	if got := rowsOf(body); strings.Join(got, " ") != shelter.ID.String()+" "+psych.ID.String() {
		t.Errorf("after accept and decline, needs action shows %v", got)
	}
	wantContains(t, body, "complete by ")
}

func must(res *http.Response, _ string) *http.Response { return res }

// rowHTML is the table row of referral id in a list page.
func rowHTML(body string, id uuid.UUID) string {
	i := strings.Index(body, `data-referral="`+id.String()+`"`)
	if i < 0 {
		return ""
	}
	j := strings.Index(body[i:], "</tr>")
	return body[i : i+j]
}

// The case page shows the family's chain of help across organizations as
// each may see it, by a short number that is the same at every node; a
// search finds it by that number or by a national id, never showing the
// id back.
func TestCasePageAndSearch(t *testing.T) {
	t.Parallel()
	n := newNetwork(t, nil, "education", "social", "ngo")
	ctx := context.Background()
	const iin = "880101300123" // valid in Kazakhstan
	r := n.referWith("education", "social", "family_support", "signs of violence at home", iin, "")
	c, err := n.App("social").RecordConsent(ctx, app.NewConsent{GivenBy: "the mother", PersonID: iin, ToOrg: "ngo", Purpose: "a safe place",
		DataCategories: []string{schemas.CategorySummary, schemas.CategoryIdentity}, ExpiresAt: time.Now().Add(time.Hour)})
	if err != nil {
		t.Fatal(err)
	}
	fwd, err := n.App("social").Move(ctx, r.ID, "forward", app.MoveInput{ToOrg: "ngo", Service: "crisis_shelter", Note: "a safe place tonight", ConsentID: c.ID})
	if err != nil {
		t.Fatal(err)
	}
	nodetest.Eventually(t, 30*time.Second, n.WantStatus("ngo", *fwd.ForwardedTo, "received"))
	number := app.CaseNumber(r.CaseID)
	if at, _ := n.App("ngo").Referral(ctx, *fwd.ForwardedTo); at.CaseNumber != number {
		t.Fatalf("the shelter numbers the case %s, education %s", at.CaseNumber, number)
	}

	for _, a := range []string{"education", "social", "ngo"} {
		if err := n.App(a).SetLanguage(ctx, a+"-caseworker", "en"); err != nil {
			t.Fatal(err)
		}
	}
	// Social protection sees both its referrals: the one it received and
	// the one it sent on, with the consents' purposes.
	so := n.signIn("social", "social-caseworker")
	res, body := so.get("/ui/cases/" + r.CaseID.String())
	wantStatus(t, res, http.StatusOK)
	wantContains(t, body, "Case "+number, `data-referral="`+r.ID.String()+`"`, `data-referral="`+fwd.ForwardedTo.String()+`"`,
		"help for the family", "a safe place", `href="/ui/new?case=`+r.CaseID.String()+`"`, "named by a national id")
	// The shelter sees its own only; education its own only.
	sh := n.signIn("ngo", "ngo-caseworker")
	_, body = sh.get("/ui/cases/" + r.CaseID.String())
	wantContains(t, body, `data-referral="`+fwd.ForwardedTo.String()+`"`)
	if strings.Contains(body, r.ID.String()) {
		t.Error("the shelter's case page shows education's referral to social protection")
	}
	ed := n.signIn("education", "education-caseworker")
	_, body = ed.get("/ui/cases/" + r.CaseID.String())
	if strings.Contains(body, fwd.ForwardedTo.String()) {
		t.Error("education's case page shows the forward it was never party to")
	}
	// "Refer this family elsewhere" opens the form with the case's number.
	_, body = so.get("/ui/new?case=" + r.CaseID.String())
	wantContains(t, body, `value="`+number+`"`)

	// Search: by number (any case, without the dash), by national id.
	res, _ = sh.form("/ui/search", url.Values{"q": {strings.ToLower(strings.ReplaceAll(number, "-", ""))}})
	wantStatus(t, res, http.StatusSeeOther)
	if res.Header.Get("Location") != "/ui/cases/"+r.CaseID.String() {
		t.Errorf("search by number goes to %q", res.Header.Get("Location"))
	}
	res, _ = so.form("/ui/search", url.Values{"q": {iin}})
	wantStatus(t, res, http.StatusSeeOther)
	if res.Header.Get("Location") != "/ui/cases/"+r.CaseID.String() {
		t.Errorf("search by national id goes to %q", res.Header.Get("Location"))
	}
	res, body = so.form("/ui/search", url.Values{"q": {"950715401237"}})
	wantStatus(t, res, http.StatusOK)
	wantContains(t, body, "••••••••1237", `id="search-none"`)
	if strings.Contains(body, "950715401237") {
		t.Error("the search page shows the national id back in full")
	}
	res, body = so.form("/ui/search", url.Values{"q": {"not a number"}})
	wantStatus(t, res, http.StatusUnprocessableEntity)
	wantContains(t, body, "neither a case number")

	// A new referral joins the case by its number.
	res, _ = so.form("/ui/referrals", url.Values{"offer": {"ngo/legal_help"}, "note": {"court papers"}, "case_id": {number},
		"consent_given_by": {"the mother"}, "consent_purpose": {"legal help"}, "consent_until": {time.Now().AddDate(0, 0, 3).Format("2006-01-02")}})
	wantStatus(t, res, http.StatusSeeOther)
	id, _ := uuid.Parse(strings.TrimPrefix(res.Header.Get("Location"), "/ui/referrals/"))
	if got, _ := n.App("social").Referral(ctx, id); got.CaseID != r.CaseID {
		t.Errorf("a referral made with case number %s joined case %s, want %s", number, got.CaseID, r.CaseID)
	}
}

// The forms of a referral's page follow its status: the live refresh
// changes nothing while the status holds (what is typed stays), and
// brings the new status's forms once the other side moved; a move that
// fails comes back with what was typed.
func TestActionFormsFollowStatus(t *testing.T) {
	t.Parallel()
	n := newNetwork(t, nil, "social", "ngo")
	ctx := context.Background()
	r := n.refer("social", "ngo", "legal_help", "court papers")
	if err := n.App("ngo").SetLanguage(ctx, "ngo-caseworker", "en"); err != nil {
		t.Fatal(err)
	}
	c := n.signIn("ngo", "ngo-caseworker")
	_, body := c.get("/ui/referrals/" + r.ID.String())
	wantContains(t, body, `hx-get="/ui/referrals/`+r.ID.String()+`/actions?status=received"`, `id="form-accept"`)

	res, _ := c.get("/ui/referrals/" + r.ID.String() + "/actions?status=received")
	wantStatus(t, res, http.StatusNoContent)

	if _, err := n.App("social").Move(ctx, r.ID, "cancel", app.MoveInput{Reason: "the family moved"}); err != nil {
		t.Fatal(err)
	}
	nodetest.Eventually(t, 30*time.Second, n.WantStatus("ngo", r.ID, "cancelled"))
	res, body = c.get("/ui/referrals/" + r.ID.String() + "/actions?status=received")
	wantStatus(t, res, http.StatusOK)
	wantContains(t, body, `id="changed"`, "Cancelled")
	if strings.Contains(body, `id="form-accept"`) {
		t.Error("the accept form is still offered on a cancelled referral")
	}

	// A decline that fails (it was cancelled meanwhile) keeps the reason.
	res, _ = c.form("/ui/referrals/"+r.ID.String()+"/decline", url.Values{"reason_code": {"no_capacity"}, "reason": {"no lawyer free this week"}})
	if res.StatusCode != http.StatusConflict {
		t.Fatalf("decline of a cancelled referral: %s", res.Status)
	}
	r2 := n.refer("social", "ngo", "legal_help", "second family")
	res, body = c.form("/ui/referrals/"+r2.ID.String()+"/decline", url.Values{"reason_code": {"bogus"}, "reason": {"no lawyer free this week"}})
	wantStatus(t, res, http.StatusUnprocessableEntity)
	wantContains(t, body, ">no lawyer free this week</textarea>")
}

// A case number is the last 48 bits of its id in Crockford's base32, as
// Postgres's core.case_number finds it; typed loosely, it still reads.
func TestCaseNumber(t *testing.T) {
	id := uuid.MustParse("01890a5d-ac96-774b-bcce-b302099a8057")
	n := app.CaseNumber(id)
	if len(n) != 11 || n[5] != '-' {
		t.Fatalf("case number %q", n)
	}
	bits, ok := app.ParseCaseNumber(strings.ToLower(strings.ReplaceAll(n, "-", " ")))
	if !ok || bits != 0xb302099a8057 {
		t.Errorf("ParseCaseNumber(%q) = %x, %v", n, bits, ok)
	}
	if _, ok := app.ParseCaseNumber("3MZ4K-7QX2"); ok {
		t.Error("a nine-character number reads")
	}
}
