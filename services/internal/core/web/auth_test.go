package web_test

import (
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/refbus/refbus/pkg/poll"
	"github.com/refbus/refbus/services/internal/core/web"
)

// TestSignIn: nothing but the sign-in page without a session; a wrong
// password signs no one in; a right one does, until sign-out.
func TestSignIn(t *testing.T) {
	t.Parallel()
	n := newNetwork(t, nil, "health")
	anon := n.client("health")

	res, _ := anon.get("/ui/inbox")
	wantStatus(t, res, http.StatusSeeOther)
	if res.Header.Get("Location") != "/ui/login" {
		t.Fatalf("anonymous inbox redirects to %q", res.Header.Get("Location"))
	}
	for _, p := range []string{"/api/v1/inbox", "/api/v1/referrals", "/api/v1/cases/0190a0d0-0000-7000-8000-000000000000"} {
		res, _ = anon.get(p)
		wantStatus(t, res, http.StatusUnauthorized)
	}
	res, body := anon.get("/ui/login")
	wantStatus(t, res, http.StatusOK)
	wantContains(t, body, `<label for="username">`, `<label for="password">`)
	res, _ = anon.get("/healthz")
	wantStatus(t, res, http.StatusOK)

	res, body = anon.form("/ui/login", url.Values{"username": {"health-caseworker"}, "password": {"wrong"}})
	wantStatus(t, res, http.StatusUnauthorized)
	wantContains(t, body, "role=\"alert\"")
	res, _ = anon.form("/ui/login", url.Values{"username": {"nobody"}, "password": {password}})
	wantStatus(t, res, http.StatusUnauthorized)
	res, _ = anon.get("/ui/inbox")
	wantStatus(t, res, http.StatusSeeOther)

	c := n.signIn("health", "health-caseworker")
	session := c.cookie("refbus_health_session")
	if session == nil {
		t.Fatal("no session cookie after sign-in")
	}
	res, body = c.get("/ui/inbox")
	wantStatus(t, res, http.StatusOK)
	wantContains(t, body, "Test caseworker of health")
	res, _ = c.get("/api/v1/inbox")
	wantStatus(t, res, http.StatusOK)

	res, _ = c.form("/ui/logout", nil)
	wantStatus(t, res, http.StatusSeeOther)
	res, _ = c.get("/ui/inbox")
	wantStatus(t, res, http.StatusSeeOther)
	// The old cookie, kept by someone, is dead too: the server forgot it.
	res, _ = anon.get("/ui/inbox", "Cookie", session.Name+"="+session.Value)
	wantStatus(t, res, http.StatusSeeOther)
	res, _ = anon.get("/api/v1/inbox", "Cookie", session.Name+"="+session.Value)
	wantStatus(t, res, http.StatusUnauthorized)
}

// TestSignInThrottled: guessing an account's password from one address is
// slowed down, even with the right password once the budget is spent; a
// colleague behind the same address (a shared proxy) still signs in, and
// signing in right costs nothing.
func TestSignInThrottled(t *testing.T) {
	t.Parallel()
	n := newNetwork(t, nil, "health")
	c := n.client("health")
	for range 12 {
		res, _ := c.form("/ui/login", url.Values{"username": {"health-supervisor"}, "password": {password}})
		wantStatus(t, res, http.StatusSeeOther)
	}
	for i := range 10 {
		res, _ := c.form("/ui/login", url.Values{"username": {"health-caseworker"}, "password": {"guess " + string(rune('a'+i))}})
		wantStatus(t, res, http.StatusUnauthorized)
	}
	res, _ := c.form("/ui/login", url.Values{"username": {"Health-Caseworker"}, "password": {password}})
	wantStatus(t, res, http.StatusTooManyRequests)
	if res.Header.Get("Retry-After") == "" {
		t.Fatal("429 without Retry-After")
	}
	res, _ = n.client("health").form("/ui/login", url.Values{"username": {"health-supervisor"}, "password": {password}})
	wantStatus(t, res, http.StatusSeeOther)
}

// TestSessionExpires: a session ends by itself after its time.
func TestSessionExpires(t *testing.T) {
	t.Parallel()
	n := newNetwork(t, func(_, _ string, c *web.Config) { c.SessionTTL = time.Second }, "health")
	c := n.signIn("health", "health-supervisor")
	session := c.set["refbus_health_session"]
	if session == nil || !session.Secure || !session.HttpOnly || session.SameSite != http.SameSiteLaxMode {
		t.Fatalf("session cookie is not Secure, HttpOnly and SameSite=Lax: %+v", session)
	}
	anon := n.client("health")
	poll.Until(t, 15*time.Second, func() error {
		res, _ := anon.get("/ui/inbox", "Cookie", session.Name+"="+session.Value)
		if res.StatusCode != http.StatusSeeOther {
			return errorf("session still valid: %s", res.Status)
		}
		return nil
	})
}

// TestIsolation: an agency's people and systems reach only their own
// agency's service; another agency's session, token or sign-in gets
// nowhere, and what a role may not do answers 403.
func TestIsolation(t *testing.T) {
	t.Parallel()
	n := newNetwork(t, nil, "health", "ngo")
	r := n.refer("health", "ngo", "mothers_home", "Maternity ward: the mother needs a place to stay.")

	// The health caseworker's session means nothing at the ngo, under
	// either agency's cookie name.
	hc := n.signIn("health", "health-caseworker")
	s := hc.cookie("refbus_health_session")
	ngoAnon := n.client("ngo")
	for _, name := range []string{"refbus_health_session", "refbus_ngo_session"} {
		res, _ := ngoAnon.get("/ui/referrals/"+r.ID.String(), "Cookie", name+"="+s.Value)
		wantStatus(t, res, http.StatusSeeOther)
		res, _ = ngoAnon.get("/api/v1/referrals/"+r.ID.String(), "Cookie", name+"="+s.Value)
		wantStatus(t, res, http.StatusUnauthorized)
	}
	// The ngo's users do not exist at health.
	res, _ := n.client("health").form("/ui/login", url.Values{"username": {"ngo-caseworker"}, "password": {password}})
	wantStatus(t, res, http.StatusUnauthorized)

	// Bearer tokens: this agency's work; another agency's claim is 403;
	// another agency's key, a bad signature or an expired token is 401.
	tok := func(key []byte, a, role string, ttl time.Duration) string {
		s, err := web.IssueToken(key, a, "", a+"-case-system", role, ttl)
		if err != nil {
			t.Fatal(err)
		}
		return "Bearer " + s
	}
	api := n.client("ngo")
	res, body := api.get("/api/v1/inbox", "Authorization", tok(apiKey("ngo"), "ngo", web.RoleCaseworker, time.Minute))
	wantStatus(t, res, http.StatusOK)
	wantContains(t, body, r.ID.String())
	res, _ = api.get("/api/v1/inbox", "Authorization", tok(apiKey("ngo"), "health", web.RoleCaseworker, time.Minute))
	wantStatus(t, res, http.StatusForbidden)
	res, _ = api.get("/ui/inbox", "Authorization", tok(apiKey("ngo"), "health", web.RoleCaseworker, time.Minute))
	wantStatus(t, res, http.StatusForbidden)
	res, _ = api.get("/api/v1/inbox", "Authorization", tok(apiKey("health"), "health", web.RoleCaseworker, time.Minute))
	wantStatus(t, res, http.StatusUnauthorized)
	res, _ = api.get("/api/v1/inbox", "Authorization", tok(apiKey("ngo"), "ngo", web.RoleCaseworker, -time.Minute))
	wantStatus(t, res, http.StatusUnauthorized)
	res, _ = api.get("/api/v1/inbox", "Authorization", "Bearer not-a-token")
	wantStatus(t, res, http.StatusUnauthorized)
	// A token valid for longer than the node takes is refused, saying so.
	res, _ = api.get("/api/v1/inbox", "Authorization", tok(apiKey("ngo"), "ngo", web.RoleCaseworker, web.DefaultTokenMaxTTL+time.Hour))
	wantStatus(t, res, http.StatusUnauthorized)
	if h := res.Header.Get("WWW-Authenticate"); !strings.Contains(h, "REFBUS_TOKEN_MAX_TTL") {
		t.Fatalf("a token valid too long: WWW-Authenticate %q does not say why", h)
	}
	res, _ = api.get("/api/v1/inbox", "Authorization", tok(apiKey("ngo"), "ngo", web.RoleCaseworker, web.DefaultTokenMaxTTL))
	wantStatus(t, res, http.StatusOK)

	// An auditor's token reads and changes nothing; a caseworker's may not
	// re-drive dead letters.
	res, _ = api.get("/api/v1/referrals/"+r.ID.String(), "Authorization", tok(apiKey("ngo"), "ngo", web.RoleAuditor, time.Minute))
	wantStatus(t, res, http.StatusOK)
	req, _ := http.NewRequest(http.MethodPost, n.urls["ngo"]+"/api/v1/referrals/"+r.ID.String()+"/accept", nil)
	req.Header.Set("Authorization", tok(apiKey("ngo"), "ngo", web.RoleAuditor, time.Minute))
	res, _ = api.do(req)
	wantStatus(t, res, http.StatusForbidden)
	req, _ = http.NewRequest(http.MethodPost, n.urls["ngo"]+"/api/v1/dead-letters/redrive", nil)
	req.Header.Set("Authorization", tok(apiKey("ngo"), "ngo", web.RoleCaseworker, time.Minute))
	res, _ = api.do(req)
	wantStatus(t, res, http.StatusForbidden)
	// Nor erase a person: that is a supervisor's.
	req, _ = http.NewRequest(http.MethodPost, n.urls["ngo"]+"/api/v1/people/erase", strings.NewReader(`{"person_id":"880101300123","reason":"asked"}`))
	req.Header.Set("Authorization", tok(apiKey("ngo"), "ngo", web.RoleCaseworker, time.Minute))
	req.Header.Set("Content-Type", "application/json")
	res, _ = api.do(req)
	wantStatus(t, res, http.StatusForbidden)

	// The auditor in the UI: reads the referral, sees no action, and a
	// move posted by hand is refused.
	aud := n.signIn("ngo", "ngo-auditor")
	res, body = aud.get("/ui/referrals/" + r.ID.String())
	wantStatus(t, res, http.StatusOK)
	wantContains(t, body, "Maternity ward: the mother needs a place to stay.")
	if strings.Contains(body, `action="/ui/referrals/`+r.ID.String()+`/accept"`) {
		t.Fatal("the auditor is offered the accept form")
	}
	res, _ = aud.form("/ui/referrals/"+r.ID.String()+"/accept", nil)
	wantStatus(t, res, http.StatusForbidden)
	if got, _ := n.Referral("ngo", r.ID); got.Status != "received" {
		t.Fatalf("after the auditor's refused accept the referral is %s", got.Status)
	}

	// The health caseworker sees health's referral, not an unknown one.
	res, _ = hc.get("/ui/referrals/" + r.ID.String())
	wantStatus(t, res, http.StatusOK)
}

// TestCrossSiteForms: a form another site makes the browser post is
// refused before it moves anything.
func TestCrossSiteForms(t *testing.T) {
	t.Parallel()
	n := newNetwork(t, nil, "health", "ngo")
	r := n.refer("health", "ngo", "psychological_help", "A mother needs help.")
	c := n.signIn("ngo", "ngo-caseworker")
	path := "/ui/referrals/" + r.ID.String() + "/accept"
	for _, hdr := range [][]string{
		{"Sec-Fetch-Site", "cross-site"},
		{"Sec-Fetch-Site", "", "Origin", "https://evil.example"},
	} {
		res, _ := c.form(path, nil, hdr...)
		wantStatus(t, res, http.StatusForbidden)
	}
	if got, _ := n.Referral("ngo", r.ID); got.Status != "received" {
		t.Fatalf("a cross-site form moved the referral to %s", got.Status)
	}
	res, _ := c.form(path, nil)
	wantStatus(t, res, http.StatusSeeOther)
	if got, _ := n.Referral("ngo", r.ID); got.Status != "accepted" {
		t.Fatalf("the same-site accept left the referral %s", got.Status)
	}
}
