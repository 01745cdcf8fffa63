package web_test

import (
	"context"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/refbus/refbus/services/internal/core"
	"github.com/refbus/refbus/services/internal/core/directory"
	"github.com/refbus/refbus/services/internal/core/web"
)

// bearer is an Authorization header for a token of node a's system or
// user subject, with role.
func bearer(t *testing.T, a, subject, role string) string {
	t.Helper()
	s, err := web.IssueToken(apiKey(a), a, "", subject, role, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	return "Bearer " + s
}

// Pages are in Russian, the test network's language.

// TestDisableUser: a disabled user's live session stops working at once,
// they cannot sign in, and a token naming them is refused, while another
// system's token still works; enabled again, they sign in. A supervisor
// cannot disable themselves, and only supervisors reach the users pages.
func TestDisableUser(t *testing.T) {
	t.Parallel()
	n := newNetwork(t, nil, "health")
	sup := n.signIn("health", "health-supervisor")
	cw := n.signIn("health", "health-caseworker")
	res, _ := cw.get("/ui/inbox")
	wantStatus(t, res, http.StatusOK)
	api := n.client("health")
	res, _ = api.get("/api/v1/inbox", "Authorization", bearer(t, "health", "health-caseworker", web.RoleCaseworker))
	wantStatus(t, res, http.StatusOK)

	// Caseworkers and auditors are kept off the users pages.
	for _, who := range []*client{cw, n.signIn("health", "health-auditor")} {
		res, _ = who.get("/ui/users")
		wantStatus(t, res, http.StatusForbidden)
		res, _ = who.form("/ui/users/health-caseworker/disable", nil)
		wantStatus(t, res, http.StatusForbidden)
	}

	res, body := sup.get("/ui/users")
	wantStatus(t, res, http.StatusOK)
	wantContains(t, body, `href="/ui/users/health-caseworker"`, "Test caseworker of health", `data-state="active"`)
	res, _ = sup.form("/ui/users/health-caseworker/disable", nil)
	wantStatus(t, res, http.StatusSeeOther)
	if loc := res.Header.Get("Location"); loc != "/ui/users/health-caseworker?done=disabled" {
		t.Fatalf("disable redirects to %q", loc)
	}
	res, body = sup.get("/ui/users/health-caseworker?done=disabled")
	wantStatus(t, res, http.StatusOK)
	wantContains(t, body, `data-state="disabled"`, `action="/ui/users/health-caseworker/enable"`)

	// The live session is dead, the password no longer signs in, and the
	// token naming the user is refused.
	res, _ = cw.get("/ui/inbox")
	wantStatus(t, res, http.StatusSeeOther)
	res, body = n.client("health").form("/ui/login", url.Values{"username": {"health-caseworker"}, "password": {password}})
	wantStatus(t, res, http.StatusForbidden)
	wantContains(t, body, "Ваша учётная запись отключена")
	res, _ = api.get("/api/v1/inbox", "Authorization", bearer(t, "health", "health-caseworker", web.RoleCaseworker))
	wantStatus(t, res, http.StatusUnauthorized)
	if !strings.Contains(res.Header.Get("WWW-Authenticate"), "disabled user") {
		t.Fatalf("WWW-Authenticate: %q", res.Header.Get("WWW-Authenticate"))
	}
	res, _ = api.get("/api/v1/inbox", "Authorization", bearer(t, "health", "health-case-system", web.RoleCaseworker))
	wantStatus(t, res, http.StatusOK)

	// Not themselves.
	res, body = sup.form("/ui/users/health-supervisor/disable", nil)
	wantStatus(t, res, http.StatusUnprocessableEntity)
	wantContains(t, body, "Со своей учётной записью так нельзя")
	res, _ = sup.get("/ui/inbox")
	wantStatus(t, res, http.StatusOK)

	res, _ = sup.form("/ui/users/health-caseworker/enable", nil)
	wantStatus(t, res, http.StatusSeeOther)
	n.signIn("health", "health-caseworker")
	res, body = sup.get("/ui/users")
	wantStatus(t, res, http.StatusOK)
	if strings.Contains(body, `data-state="disabled"`) {
		t.Fatal("the enabled user is still listed as disabled")
	}
}

// TestResetPassword: a new password ends the user's sessions; the old
// one no longer signs in, the new one does; one too short comes back with
// the reason.
func TestResetPassword(t *testing.T) {
	t.Parallel()
	n := newNetwork(t, nil, "health")
	sup := n.signIn("health", "health-supervisor")
	cw := n.signIn("health", "health-caseworker")

	res, body := sup.form("/ui/users/health-caseworker/password", url.Values{"password": {"short"}})
	wantStatus(t, res, http.StatusUnprocessableEntity)
	wantContains(t, body, `id="u-password-err"`, "не короче 12 знаков")
	res, _ = cw.get("/ui/inbox")
	wantStatus(t, res, http.StatusOK)

	const fresh = "a new password of the day"
	res, _ = sup.form("/ui/users/health-caseworker/password", url.Values{"password": {fresh}})
	wantStatus(t, res, http.StatusSeeOther)
	res, _ = cw.get("/ui/inbox")
	wantStatus(t, res, http.StatusSeeOther)
	res, _ = n.client("health").form("/ui/login", url.Values{"username": {"health-caseworker"}, "password": {password}})
	wantStatus(t, res, http.StatusUnauthorized)
	res, _ = n.client("health").form("/ui/login", url.Values{"username": {"health-caseworker"}, "password": {fresh}})
	wantStatus(t, res, http.StatusSeeOther)
	// The supervisor's own session is untouched.
	res, _ = sup.get("/ui/inbox")
	wantStatus(t, res, http.StatusOK)
}

// TestCreateUser: a failed form comes back with what was typed (not the
// password) and the reason beside its field; a good one makes a user who
// signs in, whose sign-in the list shows; a changed role ends their
// sessions and holds from the next sign-in.
func TestCreateUser(t *testing.T) {
	t.Parallel()
	n := newNetwork(t, nil, "health")
	sup := n.signIn("health", "health-supervisor")
	form := url.Values{"username": {"aigerim.s"}, "name": {"Айгерим Сапарова"}, "role": {"auditor"}, "org": {""}, "password": {"too short"}}
	res, body := sup.form("/ui/users", form)
	wantStatus(t, res, http.StatusUnprocessableEntity)
	wantContains(t, body, `value="aigerim.s"`, `value="Айгерим Сапарова"`, `<option value="auditor" selected>`, `id="u-password-err"`, "не короче 12 знаков", `role="alert"`)
	if strings.Contains(body, "too short") {
		t.Fatal("the failed form shows the password typed")
	}
	form.Set("password", "a long enough password")
	form.Set("username", "health-caseworker")
	res, body = sup.form("/ui/users", form)
	wantStatus(t, res, http.StatusUnprocessableEntity)
	wantContains(t, body, `id="u-username-err"`, "уже занято", `value="Айгерим Сапарова"`)
	form.Set("username", "Aigerim S")
	res, body = sup.form("/ui/users", form)
	wantStatus(t, res, http.StatusUnprocessableEntity)
	wantContains(t, body, `id="u-username-err"`)

	form.Set("username", "aigerim.s")
	res, _ = sup.form("/ui/users", form)
	wantStatus(t, res, http.StatusSeeOther)
	c := n.client("health")
	res, _ = c.form("/ui/login", url.Values{"username": {"aigerim.s"}, "password": {"a long enough password"}})
	wantStatus(t, res, http.StatusSeeOther)
	res, body = c.get("/ui/inbox")
	wantStatus(t, res, http.StatusOK)
	wantContains(t, body, "Айгерим Сапарова", "аудитор, только чтение")
	res, body = sup.get("/ui/users")
	wantStatus(t, res, http.StatusOK)
	row := body[strings.Index(body, `data-user="aigerim.s"`):]
	row = row[:strings.Index(row, "</tr>")]
	if strings.Contains(row, "ещё не входил") {
		t.Fatalf("the list does not show the user's sign-in: %s", row)
	}

	res, _ = sup.form("/ui/users/aigerim.s/role", url.Values{"role": {"caseworker"}, "org": {""}})
	wantStatus(t, res, http.StatusSeeOther)
	res, _ = c.get("/ui/inbox")
	wantStatus(t, res, http.StatusSeeOther)
	res, _ = c.form("/ui/login", url.Values{"username": {"aigerim.s"}, "password": {"a long enough password"}})
	wantStatus(t, res, http.StatusSeeOther)
	res, body = c.get("/ui/inbox")
	wantStatus(t, res, http.StatusOK)
	wantContains(t, body, "(специалист)")
}

// TestOrganizationSupervisorManagesItsOwn: a supervisor of one
// organization sees and manages that organization's users only: another
// organization's is forbidden (403), and so is making a user of the whole
// node or of another organization.
func TestOrganizationSupervisorManagesItsOwn(t *testing.T) {
	t.Parallel()
	support := directory.Offer{Name: "family_support", Title: "Family support", Eligibility: "families", Languages: []string{"ru"}, Area: "Almaty"}
	n := newNetworkWith(t, nil, func(c *core.Config) {
		if c.Node == "social" {
			c.Organizations = []directory.Organization{
				{ID: almaly, Name: "Family support centre, Almaly district", Services: []directory.Offer{support}},
				{ID: auezov, Name: "Family support centre, Auezov district", Services: []directory.Offer{support}},
			}
		}
	}, "social")
	for _, u := range []web.User{
		{Username: "almaly-supervisor", Name: "Supervisor of Almaly", Role: web.RoleSupervisor, Org: almaly, Password: password},
		{Username: "almaly-caseworker", Name: "Caseworker of Almaly", Role: web.RoleCaseworker, Org: almaly, Password: password},
		{Username: "auezov-caseworker", Name: "Caseworker of Auezov", Role: web.RoleCaseworker, Org: auezov, Password: password},
	} {
		if err := web.SeedUser(context.Background(), n.App("social"), u); err != nil {
			t.Fatal(err)
		}
	}
	sup := n.signIn("social", "almaly-supervisor")
	res, body := sup.get("/ui/users")
	wantStatus(t, res, http.StatusOK)
	wantContains(t, body, `data-user="almaly-caseworker"`)
	for _, other := range []string{"auezov-caseworker", "social-caseworker"} {
		if strings.Contains(body, `data-user="`+other+`"`) {
			t.Fatalf("the Almaly supervisor sees %s", other)
		}
		res, _ = sup.get("/ui/users/" + other)
		wantStatus(t, res, http.StatusForbidden)
		for _, action := range []string{"disable", "password", "role"} {
			res, _ = sup.form("/ui/users/"+other+"/"+action, url.Values{"password": {"a long enough password"}, "role": {"caseworker"}, "org": {almaly}})
			wantStatus(t, res, http.StatusForbidden)
		}
	}
	other := n.signIn("social", "auezov-caseworker")
	res, _ = other.get("/ui/inbox")
	wantStatus(t, res, http.StatusOK)

	// Not a user of the whole node, nor of the other organization, nor
	// moving their own caseworker there.
	for _, org := range []string{"", auezov} {
		res, body = sup.form("/ui/users", url.Values{"username": {"new.one"}, "name": {"New one"}, "role": {"caseworker"}, "org": {org}, "password": {"a long enough password"}})
		wantStatus(t, res, http.StatusForbidden)
		wantContains(t, body, `id="u-org-err"`, "только пользователями своей организации", `value="new.one"`)
	}
	res, _ = sup.form("/ui/users/almaly-caseworker/role", url.Values{"role": {"caseworker"}, "org": {auezov}})
	wantStatus(t, res, http.StatusForbidden)
	res, _ = sup.form("/ui/users", url.Values{"username": {"new.one"}, "name": {"New one"}, "role": {"caseworker"}, "org": {almaly}, "password": {"a long enough password"}})
	wantStatus(t, res, http.StatusSeeOther)
	res, _ = sup.form("/ui/users/almaly-caseworker/disable", nil)
	wantStatus(t, res, http.StatusSeeOther)
}
