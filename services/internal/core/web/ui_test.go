package web_test

import (
	"bufio"
	"context"
	"encoding/json"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/refbus/refbus/pkg/poll"
	"github.com/refbus/refbus/pkg/referral"
	"github.com/refbus/refbus/schemas"
	"github.com/refbus/refbus/services/internal/core"
	"github.com/refbus/refbus/services/internal/core/app"
	"github.com/refbus/refbus/services/internal/core/nodetest"
)

var rowRe = regexp.MustCompile(`data-referral="([0-9a-f-]{36})"`)

func rows(body string) []string {
	var out []string
	for _, m := range rowRe.FindAllStringSubmatch(body, -1) {
		out = append(out, m[1])
	}
	return out
}

// TestInboxCountsAndFilters: the inbox counts by status, and narrows by
// status, service, overdue and date; overdue referrals stand out.
func TestInboxCountsAndFilters(t *testing.T) {
	t.Parallel()
	n := newNetworkWith(t, nil, func(c *core.Config) {
		// Psychological help must be accepted at once: it is overdue as
		// soon as the sender's timer looks.
		c.SLAs = map[string]app.SLA{"psychological_help": {Accept: time.Nanosecond}, "": {Accept: time.Hour}}
		c.SLATick = 50 * time.Millisecond
	}, "social", "ngo")
	a := n.refer("social", "ngo", "crisis_shelter", "Mother and two children.")
	b := n.refer("social", "ngo", "legal_help", "Divorce and custody.")
	late := n.refer("social", "ngo", "psychological_help", "Severe strain.")
	if _, err := n.App("ngo").Move(context.Background(), b.ID, referral.Accept, app.MoveInput{}); err != nil {
		t.Fatal(err)
	}
	poll.Until(t, 20*time.Second, func() error {
		r, err := n.Referral("ngo", late.ID)
		if err == nil && !r.Overdue {
			return errorf("not overdue yet at the ngo")
		}
		return err
	})
	c := n.signIn("ngo", "ngo-caseworker")
	res, body := c.get("/ui/inbox")
	wantStatus(t, res, http.StatusOK)
	wantContains(t, body, `data-count="all">3<`, `data-count="received">2<`, `data-count="accepted">1<`, `data-count="overdue">1<`,
		`<tr class="overdue" data-referral="`+late.ID.String()+`"`)
	if got := rows(body); len(got) != 3 || got[0] != late.ID.String() {
		t.Fatalf("inbox rows %v, want the three, newest first", got)
	}
	for q, want := range map[string][]string{
		"status=accepted":                         {b.ID.String()},
		"service=crisis_shelter":                  {a.ID.String()},
		"overdue=1":                               {late.ID.String()},
		"status=received&service=legal_help":      nil,
		"from=2000-01-01&to=2000-12-31":           nil,
		"from=" + time.Now().Format("2006-01-02"): {late.ID.String(), b.ID.String(), a.ID.String()},
	} {
		res, body := c.get("/ui/inbox?" + q)
		wantStatus(t, res, http.StatusOK)
		if got := rows(body); strings.Join(got, ",") != strings.Join(want, ",") {
			t.Errorf("inbox?%s shows %v, want %v", q, got, want)
		}
	}
	// The sender sees the live status of what it sent.
	s := n.signIn("social", "social-caseworker")
	res, body = s.get("/ui/sent?status=accepted")
	wantStatus(t, res, http.StatusOK)
	poll.Until(t, 20*time.Second, func() error {
		_, body = s.get("/ui/sent?status=accepted")
		if got := rows(body); len(got) != 1 || got[0] != b.ID.String() {
			return errorf("sent?status=accepted shows %v", got)
		}
		return nil
	})
}

// TestLiveUpdates: an open page hears of a new referral without a reload.
func TestLiveUpdates(t *testing.T) {
	t.Parallel()
	n := newNetwork(t, nil, "health", "education")
	c := n.signIn("education", "education-caseworker")
	req, _ := http.NewRequest(http.MethodGet, n.urls["education"]+"/ui/events", nil)
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	res, err := c.http.Do(req.WithContext(ctx))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { res.Body.Close() })
	wantStatus(t, res, http.StatusOK)
	if ct := res.Header.Get("Content-Type"); ct != "text/event-stream" {
		t.Fatalf("events come as %q", ct)
	}
	var changes atomic.Int32
	go func() {
		sc := bufio.NewScanner(res.Body)
		for sc.Scan() {
			if sc.Text() == "event: changed" {
				changes.Add(1)
			}
		}
	}()
	n.refer("health", "education", "early_intervention_assessment", "2-year check: speech delay.")
	poll.Until(t, 20*time.Second, func() error {
		if changes.Load() == 0 {
			return errorf("no changed event after a referral arrived")
		}
		return nil
	})
}

// TestOpenAPICoversTheUI: every link, form, script and event stream of the
// UI's pages is an operation of /openapi.json (OpenAPI 3.1), with its
// method.
func TestOpenAPICoversTheUI(t *testing.T) {
	t.Parallel()
	n := newNetwork(t, nil, "education", "social")
	r := n.refer("education", "social", "family_support", "Signs of violence at home.")
	c := n.signIn("social", "social-caseworker")

	res, body := n.client("social").get("/openapi.json")
	wantStatus(t, res, http.StatusOK)
	var doc struct {
		OpenAPI string                                `json:"openapi"`
		Paths   map[string]map[string]json.RawMessage `json:"paths"`
	}
	if err := json.Unmarshal([]byte(body), &doc); err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(doc.OpenAPI, "3.1") {
		t.Fatalf("openapi %q, want 3.1", doc.OpenAPI)
	}
	documented := func(method, path string) bool {
		for p, ops := range doc.Paths {
			re := regexp.MustCompile("^" + regexp.MustCompile(`\\\{[a-z_]+\\\}`).ReplaceAllString(regexp.QuoteMeta(p), `[^/]+`) + "$")
			if _, ok := ops[strings.ToLower(method)]; ok && re.MatchString(path) {
				return true
			}
		}
		return false
	}
	attr := regexp.MustCompile(`(href|src|action|hx-get|hx-post|sse-connect)="([^"]+)"`)
	formRe := regexp.MustCompile(`<form[^>]*>`)
	seen := 0
	for _, page := range []string{"/ui/inbox", "/ui/sent", "/ui/new", "/ui/referrals/" + r.ID.String(), "/ui/login"} {
		res, body := c.get(page)
		wantStatus(t, res, http.StatusOK)
		posts := map[string]bool{}
		for _, f := range formRe.FindAllString(body, -1) {
			if strings.Contains(f, `method="post"`) {
				posts[attr.FindStringSubmatch(f[strings.Index(f, "action="):])[2]] = true
			}
		}
		for _, m := range attr.FindAllStringSubmatch(body, -1) {
			u, err := url.Parse(strings.ReplaceAll(m[2], "&amp;", "&"))
			if err != nil || u.Host != "" || !strings.HasPrefix(u.Path, "/") {
				continue
			}
			method := http.MethodGet
			if m[1] == "action" && posts[m[2]] {
				method = http.MethodPost
			}
			seen++
			if !documented(method, u.Path) {
				t.Errorf("%s links to %s %s, which /openapi.json lacks", page, method, u.Path)
			}
		}
	}
	if seen < 20 {
		t.Fatalf("found only %d links and forms: the crawl is broken", seen)
	}
	for _, op := range []string{"/api/v1/inbox", "/api/v1/referrals/{id}/accept", "/api/v1/cases/{id}"} {
		if _, ok := doc.Paths[op]; !ok {
			t.Errorf("/openapi.json lacks %s", op)
		}
	}
}

// A form that is incomplete comes back with a message a person can read,
// whole: no formatting residue, and nothing written.
func TestIncompleteFormExplained(t *testing.T) {
	t.Parallel()
	n := newNetwork(t, nil, "health", "ngo")
	c := n.signIn("health", "health-caseworker")
	res, body := c.form("/ui/referrals", url.Values{"offer": {"ngo/legal_help"}})
	wantStatus(t, res, http.StatusUnprocessableEntity)
	if !strings.Contains(body, "Форма заполнена не полностью или неверно") || strings.Contains(body, "%!") {
		t.Fatalf("the page does not explain the error whole:\n%s", body)
	}
	if sent, err := n.App("health").Sent(context.Background(), "", 10); err != nil || len(sent) != 0 {
		t.Fatalf("sent: %v %v", sent, err)
	}
}

// A supervisor erases a person from the UI; a caseworker may not. A bad
// or unknown national id comes back as the page with the reason; the
// erasure answers with a redirect to the page saying how many referrals
// it erased, and the referral about the person ends.
func TestEraseFromUI(t *testing.T) {
	t.Parallel()
	n := newNetwork(t, nil, "health", "ngo")
	ctx := context.Background()
	c, err := n.App("health").RecordConsent(ctx, app.NewConsent{GivenBy: "the mother", ToOrg: "ngo", Purpose: "a safe place",
		DataCategories: []string{schemas.CategorySummary, schemas.CategoryIdentity}, ExpiresAt: time.Now().Add(time.Hour)})
	if err != nil {
		t.Fatal(err)
	}
	r, err := n.App("health").CreateReferral(ctx, app.NewReferral{ToOrg: "ngo", Service: "crisis_shelter", Note: "the mother needs a safe place", PersonID: "880101300123", ConsentID: c.ID})
	if err != nil {
		t.Fatal(err)
	}
	n.Both(r, "received")

	cw := n.signIn("health", "health-caseworker")
	res, body := cw.get("/ui/erase")
	wantStatus(t, res, http.StatusForbidden)
	if strings.Contains(body, `action="/ui/erase"`) {
		t.Fatal("a caseworker is shown the erase form")
	}
	res, _ = cw.form("/ui/erase", url.Values{"person_id": {"880101300123"}, "reason": {"asked"}})
	wantStatus(t, res, http.StatusForbidden)
	if got, _ := n.Referral("health", r.ID); got.Note == "" {
		t.Fatal("a caseworker's refused erasure erased")
	}

	sup := n.signIn("health", "health-supervisor")
	res, body = sup.get("/ui/inbox")
	wantStatus(t, res, http.StatusOK)
	wantContains(t, body, `href="/ui/erase"`)
	res, body = sup.get("/ui/erase")
	wantStatus(t, res, http.StatusOK)
	wantContains(t, body, `action="/ui/erase"`, `name="person_id"`, `name="reason"`)
	res, _ = sup.form("/ui/erase", url.Values{"person_id": {"880101300124"}, "reason": {"asked"}})
	wantStatus(t, res, http.StatusUnprocessableEntity)
	res, _ = sup.form("/ui/erase", url.Values{"person_id": {"010101500122"}, "reason": {"asked"}})
	wantStatus(t, res, http.StatusNotFound)
	res, _ = sup.form("/ui/erase", url.Values{"person_id": {"880101300123"}, "reason": {"the mother asked, in writing"}})
	wantStatus(t, res, http.StatusSeeOther)
	if loc := res.Header.Get("Location"); loc != "/ui/erase?erased=1" {
		t.Fatalf("after the erasure: Location %q", loc)
	}
	res, body = sup.get("/ui/erase?erased=1")
	wantStatus(t, res, http.StatusOK)
	wantContains(t, body, `id="erased"`)
	n.Both(r, "cancelled")
	if got, _ := n.Referral("health", r.ID); got.Note != "" || !got.KeyDestroyed {
		t.Fatalf("the referral after the erasure: note %q, key destroyed %v", got.Note, got.KeyDestroyed)
	}
}

// The language chosen on the sign-in page is kept once signed in, even
// by a user who had chosen another before; and switching the language on
// the answer to a failed form returns to the form's page, not to the
// address the form was posted to.
func TestLanguageChosenBeforeSignInKept(t *testing.T) {
	t.Parallel()
	n := newNetwork(t, nil, "health", "ngo")
	ctx := context.Background()
	if err := n.App("health").SetLanguage(ctx, "health-caseworker", "en"); err != nil {
		t.Fatal(err)
	}
	c := n.client("health")
	res, _ := c.form("/ui/lang", url.Values{"lang": {"kk"}, "back": {"/ui/login"}})
	wantStatus(t, res, http.StatusSeeOther)
	res, _ = c.form("/ui/login", url.Values{"username": {"health-caseworker"}, "password": {password}})
	wantStatus(t, res, http.StatusSeeOther)
	res, body := c.get("/ui/inbox")
	wantStatus(t, res, http.StatusOK)
	wantContains(t, body, `<html lang="kk">`)

	req, _ := http.NewRequest(http.MethodPost, c.base+"/ui/referrals", strings.NewReader(url.Values{"note": {"n"}}.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Referer", c.base+"/ui/new?case=x")
	req.Header.Set("Origin", c.base)
	res, body = c.do(req)
	wantStatus(t, res, http.StatusUnprocessableEntity)
	wantContains(t, body, `name="back" value="/ui/new?case=x"`)
}

// A new referral's form that fails comes back with everything typed and
// the real reason (here a consent that ends before today), not only "the
// form is not complete"; nothing is sent.
func TestFailedFormKeepsInput(t *testing.T) {
	t.Parallel()
	n := newNetwork(t, nil, "health", "ngo")
	cw := n.signIn("health", "health-caseworker")
	const note = "Mother and two children need a safe place tonight"
	yesterday := time.Now().AddDate(0, 0, -2).Format(time.DateOnly)
	res, body := cw.form("/ui/referrals", url.Values{
		"offer": {"ngo/crisis_shelter"}, "note": {note}, "person_id": {"880101300123"},
		"consent_given_by": {"the mother"}, "consent_purpose": {"a safe place"}, "consent_until": {yesterday},
	})
	wantStatus(t, res, http.StatusUnprocessableEntity)
	wantContains(t, body, `id="error"`, ">"+note+"</textarea>", `value="ngo/crisis_shelter" selected`, `value="880101300123"`,
		`value="the mother"`, `value="a safe place"`, `value="`+yesterday+`"`)
	if !strings.Contains(body, "expire") && !strings.Contains(body, "passed") && !strings.Contains(body, "past") {
		t.Errorf("the error does not say the consent's date is the problem:\n%s", body[strings.Index(body, `id="error"`):][:300])
	}
	if sent, err := n.App("health").Sent(context.Background(), "", 10); err != nil || len(sent) != 0 {
		t.Fatalf("a failed form sent %d referrals, %v", len(sent), err)
	}
}

// A referral forwarded to a shelter names the referral it came from
// without a link the shelter could not follow (it never held that one),
// and its timeline calls a delivered request "sent", not "not yet
// delivered".
func TestForwardedReferralPage(t *testing.T) {
	t.Parallel()
	n := newNetwork(t, nil, "education", "social", "ngo")
	r := n.refer("education", "social", "family_support", "signs of violence at home")
	n.Both(r, "received")
	ctx := context.Background()
	c, err := n.App("social").RecordConsent(ctx, app.NewConsent{GivenBy: "the mother", ToOrg: "ngo", Purpose: "a safe place",
		DataCategories: []string{schemas.CategorySummary}, ExpiresAt: time.Now().Add(time.Hour)})
	if err != nil {
		t.Fatal(err)
	}
	fwd, err := n.App("social").Move(ctx, r.ID, "forward", app.MoveInput{ToOrg: "ngo", Service: "crisis_shelter", Note: "a safe place tonight", ConsentID: c.ID})
	if err != nil {
		t.Fatal(err)
	}
	nodetest.Eventually(t, 30*time.Second, n.WantStatus("ngo", *fwd.ForwardedTo, "received"))
	if err := n.App("ngo").SetLanguage(ctx, "ngo-caseworker", "en"); err != nil {
		t.Fatal(err)
	}
	sh := n.signIn("ngo", "ngo-caseworker")
	res, body := sh.get("/ui/referrals/" + fwd.ForwardedTo.String())
	wantStatus(t, res, http.StatusOK)
	if strings.Contains(body, `href="/ui/referrals/`+r.ID.String()+`"`) {
		t.Error("the shelter's page links to a referral it never held")
	}
	wantContains(t, body, "(not held here)", "<td>Sent</td>")
	if strings.Contains(body, "Sent, not yet delivered") {
		t.Error(`the timeline says "not yet delivered" of a delivered request`)
	}
	// The forwarding node holds both, and links.
	if err := n.App("social").SetLanguage(ctx, "social-caseworker", "en"); err != nil {
		t.Fatal(err)
	}
	so := n.signIn("social", "social-caseworker")
	_, body = so.get("/ui/referrals/" + fwd.ForwardedTo.String())
	wantContains(t, body, `href="/ui/referrals/`+r.ID.String()+`"`)
}
