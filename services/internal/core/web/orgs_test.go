package web_test

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/refbus/refbus/services/internal/core"
	"github.com/refbus/refbus/services/internal/core/app"
	"github.com/refbus/refbus/services/internal/core/directory"
	"github.com/refbus/refbus/services/internal/core/nodetest"
	"github.com/refbus/refbus/services/internal/core/web"
)

// The two family support centres the social node hosts in
// TestOrganizationsOfOneNode.
const (
	almaly = "kz-almaty-fsc-almaly"
	auezov = "kz-almaty-fsc-auezov"
)

// One node hosts two organizations: referrals addressed to each are filed
// under it; each organization's caseworker sees its own inbox and sent
// referrals only, in the UI and on the API, and refers on behalf of it
// alone; the node's supervisor sees both, and filters by organization.
func TestOrganizationsOfOneNode(t *testing.T) {
	t.Parallel()
	support := directory.Offer{Name: "family_support", Title: "Family support", Eligibility: "families", Languages: []string{"kk", "ru"}, Area: "Almaty"}
	n := newNetworkWith(t, nil, func(c *core.Config) {
		if c.Node == "social" {
			c.Organizations = []directory.Organization{
				{ID: almaly, Name: "Family support centre, Almaly district", Services: []directory.Offer{support}},
				{ID: auezov, Name: "Family support centre, Auezov district", Services: []directory.Offer{support}},
			}
		}
	}, "health", "social")
	for _, org := range []string{almaly, auezov} {
		u := web.User{Username: org + "-caseworker", Name: "Caseworker of " + org, Role: web.RoleCaseworker, Org: org, Password: password}
		if err := web.SeedUser(context.Background(), n.App("social"), u); err != nil {
			t.Fatal(err)
		}
	}
	if err := web.SeedUser(context.Background(), n.App("social"), web.User{Username: "x", Role: web.RoleCaseworker, Org: "kz-nur", Password: password}); err == nil {
		t.Fatal("a user of an organization the node does not host was seeded")
	}

	a := n.refer("health", almaly, "family_support", "A family in Almaly district needs support.")
	b := n.refer("health", auezov, "family_support", "A family in Auezov district needs support.")
	for _, c := range []struct {
		r   app.Referral
		org string
	}{{a, almaly}, {b, auezov}} {
		got, err := n.Referral("social", c.r.ID)
		if err != nil || got.ToAgency != "social" || got.ToOrg != c.org || got.FromOrg != "health" || !strings.Contains(got.ToOrgName, "Family support centre") {
			t.Fatalf("social files referral %s as %+v (%v), want it under %s", c.r.ID, got, err, c.org)
		}
	}

	// In the UI: each centre's caseworker sees its own referral, and not
	// the other's, which cannot be opened or moved either.
	for _, c := range []struct {
		org         string
		own, others app.Referral
	}{{almaly, a, b}, {auezov, b, a}} {
		cw := n.signIn("social", c.org+"-caseworker")
		_, body := cw.get("/ui/inbox")
		wantContains(t, body, c.own.ID.String(), "Family support centre,")
		if strings.Contains(body, c.others.ID.String()) || strings.Contains(body, `id="f-org"`) {
			t.Fatalf("%s's caseworker sees the other centre's referral, or a filter by organization:\n%s", c.org, trim(body))
		}
		res, _ := cw.get("/ui/referrals/" + c.others.ID.String())
		wantStatus(t, res, http.StatusNotFound)
		before, _ := n.Referral("social", c.others.ID)
		res, _ = cw.form("/ui/referrals/"+c.others.ID.String()+"/accept", nil)
		wantStatus(t, res, http.StatusNotFound)
		if got, _ := n.Referral("social", c.others.ID); got.Status != before.Status {
			t.Fatalf("%s's caseworker moved the other centre's referral from %s to %s", c.org, before.Status, got.Status)
		}
		res, _ = cw.form("/ui/referrals/"+c.own.ID.String()+"/accept", nil)
		wantStatus(t, res, http.StatusSeeOther)
	}

	// The supervisor sees both, each with its centre, and filters.
	sup := n.signIn("social", "social-supervisor")
	_, body := sup.get("/ui/inbox")
	wantContains(t, body, a.ID.String(), b.ID.String(), `id="f-org"`, "Family support centre, Almaly district", "Family support centre, Auezov district")
	_, body = sup.get("/ui/inbox?org=" + auezov)
	wantContains(t, body, b.ID.String())
	if strings.Contains(body, a.ID.String()) {
		t.Fatal("the supervisor's inbox filtered by Auezov shows Almaly's referral")
	}

	// On the API, with tokens for one centre's system and the node's.
	token := func(org string) string {
		s, err := web.IssueToken(apiKey("social"), "social", org, "case-system", web.RoleCaseworker, time.Minute)
		if err != nil {
			t.Fatal(err)
		}
		return "Bearer " + s
	}
	api := n.client("social")
	list := func(tok, path string, want int) []app.Referral {
		t.Helper()
		res, body := api.get(path, "Authorization", tok)
		wantStatus(t, res, want)
		var out struct{ Referrals []app.Referral }
		if want == http.StatusOK {
			out = nodetest.Decode[struct{ Referrals []app.Referral }](t, body)
		}
		return out.Referrals
	}
	ids := func(rs []app.Referral) string {
		var s []string
		for _, r := range rs {
			s = append(s, r.ID.String())
		}
		return strings.Join(s, ",")
	}
	if got := ids(list(token(almaly), "/api/v1/inbox", 200)); got != a.ID.String() {
		t.Errorf("Almaly's inbox on the API: %s, want %s", got, a.ID)
	}
	list(token(almaly), "/api/v1/inbox?org="+auezov, http.StatusForbidden)
	if res, _ := api.get("/api/v1/referrals/"+b.ID.String(), "Authorization", token(almaly)); res.StatusCode != http.StatusNotFound {
		t.Errorf("Almaly's system reads Auezov's referral: %s", res.Status)
	}
	if got := ids(list(token(""), "/api/v1/inbox", 200)); got != b.ID.String()+","+a.ID.String() {
		t.Errorf("the node's inbox on the API: %s, want both, newest first", got)
	}
	if got := ids(list(token(""), "/api/v1/inbox?org="+auezov, 200)); got != b.ID.String() {
		t.Errorf("the node's inbox of Auezov: %s, want %s", got, b.ID)
	}
	list(token(""), "/api/v1/inbox?org=kz-nur", http.StatusUnprocessableEntity)

	// A centre refers on behalf of itself only: the referral goes out
	// from it, and shows in its sent list alone.
	consent, err := n.App("social").RecordConsent(context.Background(), app.NewConsent{GivenBy: "the mother", ToOrg: "health", Purpose: "a check",
		DataCategories: []string{"summary"}, ExpiresAt: time.Now().Add(time.Hour)})
	if err != nil {
		t.Fatal(err)
	}
	post := func(tok, body string) (*http.Response, string) {
		req, _ := http.NewRequest(http.MethodPost, n.urls["social"]+"/api/v1/referrals", strings.NewReader(body))
		req.Header.Set("Authorization", tok)
		req.Header.Set("Content-Type", "application/json")
		return api.do(req)
	}
	body = fmt.Sprintf(`{"to_org":"health","service":"child_health_check","note":"n","consent_id":%q`, consent.ID)
	if res, _ := post(token(almaly), body+`,"from_org":"`+auezov+`"}`); res.StatusCode != http.StatusForbidden {
		t.Errorf("Almaly's system refers on behalf of Auezov: %s", res.Status)
	}
	res, out := post(token(almaly), body+`}`)
	wantStatus(t, res, http.StatusCreated)
	if r := nodetest.Decode[app.Referral](t, out); r.FromOrg != almaly || r.ToOrg != "health" || r.ToAgency != "health" {
		t.Fatalf("Almaly's referral: %+v", r)
	}
	if got := list(token(almaly), "/api/v1/referrals", 200); len(got) != 1 {
		t.Errorf("Almaly sent %d referrals, want 1", len(got))
	}
	if got := list(token(auezov), "/api/v1/referrals", 200); len(got) != 0 {
		t.Errorf("Auezov's sent list shows %d referrals of Almaly's", len(got))
	}
	// The supervisor's form offers to refer on behalf of either centre.
	_, body = sup.get("/ui/new")
	wantContains(t, body, `<select id="from_org"`, `value="`+almaly+`"`, `value="`+auezov+`"`, `value="health/child_health_check"`)
	if _, body = n.signIn("social", almaly+"-caseworker").get("/ui/new"); strings.Contains(body, `id="from_org"`) {
		t.Error("a centre's caseworker is offered to refer on behalf of another")
	}
}
