package web

import (
	"errors"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"unicode/utf8"

	"github.com/refbus/refbus/services/internal/core/app"
)

// The users page: a supervisor manages the node's local accounts (mayDo
// lets supervisors alone reach /ui/users); a supervisor of one
// organization, its users only (the application keeps them to it). OIDC
// users are listed and may be disabled; their provider sets their
// password, role and organization.

// MinPasswordLength is the fewest characters a password set in the UI may
// have.
const MinPasswordLength = 12

// bcrypt reads no more than 72 bytes of a password.
const maxPasswordBytes = 72

// usernameRe is a local user's name: what fits a path and a log line.
var usernameRe = regexp.MustCompile(`^[a-z0-9][a-z0-9._-]{1,63}$`)

// account is a user as the pages show them.
type account struct {
	app.Account
	// Path is the user's page.
	Path     string
	OrgLabel string
}

type usersData struct {
	Users []account
	Roles []string
	// Orgs are the organizations a user made here may work for; the
	// first is "" (the whole node) for a supervisor of the whole node.
	Orgs []choice
	// Form is what was typed in a failed form, Errs the reason beside
	// each field (by field name).
	Form url.Values
	Errs map[string]string
}

type userData struct {
	A     account
	Roles []string
	Orgs  []choice
	// Self: the supervisor's own account, which they may not disable.
	Self bool
	// Done names what the form just sent did.
	Done string
	Form url.Values
	Errs map[string]string
}

func (u *UI) account(t T, a app.Account) account {
	ac := account{Account: a, Path: "/ui/users/" + url.PathEscape(a.Username)}
	if a.Org != "" {
		ac.OrgLabel = u.orgLabel(t, a.Org)
	}
	return ac
}

// userOrgs are the organizations the request may give a user.
func (u *UI) userOrgs(r *http.Request) []choice {
	t := u.tr(r)
	mine := app.OrgOf(r.Context())
	var out []choice
	if mine == "" {
		out = append(out, choice{Label: t.Msg("users.org_none"), ID: ""})
	}
	for _, o := range u.app.Organizations() {
		if mine == "" || o.ID == mine {
			out = append(out, choice{Label: u.orgLabel(t, o.ID), ID: o.ID})
		}
	}
	return out
}

func (u *UI) usersPage(w http.ResponseWriter, r *http.Request) {
	u.showUsers(w, r, http.StatusOK, nil, nil)
}

func (u *UI) showUsers(w http.ResponseWriter, r *http.Request, status int, form url.Values, errs map[string]string) {
	list, err := u.app.Users(r.Context())
	if err != nil {
		u.fail(w, r, err)
		return
	}
	t := u.tr(r)
	d := usersData{Roles: Roles, Orgs: u.userOrgs(r), Form: form, Errs: errs}
	for _, a := range list {
		d.Users = append(d.Users, u.account(t, a))
	}
	errKey := ""
	if len(errs) > 0 {
		errKey = "users.form_failed"
	}
	u.render(w, r, status, "users", "users", d, errKey)
}

// checkPassword returns the message key of what is wrong with a new
// password, or "".
func checkPassword(p string) string {
	switch {
	case utf8.RuneCountInString(p) < MinPasswordLength:
		return "users.err_password_short"
	case len(p) > maxPasswordBytes:
		return "users.err_password_long"
	}
	return ""
}

func (u *UI) createUser(w http.ResponseWriter, r *http.Request) {
	t := u.tr(r)
	in := app.User{
		Username: strings.ToLower(strings.TrimSpace(r.PostFormValue("username"))), Name: strings.TrimSpace(r.PostFormValue("name")),
		Role: r.PostFormValue("role"), Org: r.PostFormValue("org"),
	}
	password := r.PostFormValue("password")
	form := url.Values{"username": {in.Username}, "name": {in.Name}, "role": {in.Role}, "org": {in.Org}} // never the password
	errs := map[string]string{}
	if !usernameRe.MatchString(in.Username) {
		errs["username"] = t.Msg("users.err_username")
	}
	if in.Name == "" || utf8.RuneCountInString(in.Name) > 200 {
		errs["name"] = t.Msg("users.err_name")
	}
	if !slices.Contains(Roles, in.Role) {
		errs["role"] = t.Msg("users.err_role")
	}
	if k := checkPassword(password); k != "" {
		errs["password"] = t.Msg(k, MinPasswordLength)
	}
	if len(errs) > 0 {
		u.showUsers(w, r, http.StatusUnprocessableEntity, form, errs)
		return
	}
	hash, err := HashPassword(password)
	if err == nil {
		in.PasswordHash = hash
		err = u.app.CreateUser(r.Context(), in)
	}
	if status, field, key := userProblem(err); status != 0 {
		if status == http.StatusInternalServerError {
			u.fail(w, r, err)
			return
		}
		errs[field] = t.Msg(key)
		u.showUsers(w, r, status, form, errs)
		return
	}
	http.Redirect(w, r, "/ui/users/"+url.PathEscape(in.Username)+"?done=created", http.StatusSeeOther)
}

// userProblem maps the application's errors about a user to a status,
// the form field they are about and the message beside it.
func userProblem(err error) (status int, field, key string) {
	switch {
	case err == nil:
		return 0, "", ""
	case errors.Is(err, app.ErrConflict):
		return http.StatusUnprocessableEntity, "username", "users.err_taken"
	case errors.Is(err, app.ErrForbidden):
		return http.StatusForbidden, "org", "users.err_org_scope"
	case errors.Is(err, app.ErrInvalid):
		return http.StatusUnprocessableEntity, "org", "users.err_org"
	}
	return http.StatusInternalServerError, "", ""
}

func (u *UI) userPage(w http.ResponseWriter, r *http.Request) {
	u.showUser(w, r, http.StatusOK, nil, nil)
}

func (u *UI) showUser(w http.ResponseWriter, r *http.Request, status int, form url.Values, errs map[string]string) {
	a, err := u.app.Account(r.Context(), r.PathValue("name"))
	switch {
	case errors.Is(err, app.ErrNotFound):
		u.errorPage(w, r, http.StatusNotFound, "error.not_found")
		return
	case errors.Is(err, app.ErrForbidden):
		u.errorPage(w, r, http.StatusForbidden, "error.forbidden")
		return
	case err != nil:
		u.fail(w, r, err)
		return
	}
	p, _ := PrincipalFrom(r.Context())
	d := userData{A: u.account(u.tr(r), a), Roles: Roles, Orgs: u.userOrgs(r), Self: p.Username == a.Username, Form: form, Errs: errs}
	if status == http.StatusOK {
		d.Done = r.URL.Query().Get("done")
	}
	errKey := ""
	if len(errs) > 0 {
		errKey = "users.form_failed"
	}
	u.render(w, r, status, "user", "users", d, errKey)
}

// changeUser runs one of the user page's forms: change does it; a
// failure comes back beside field, with what was typed (form); success
// redirects to the page, saying done.
func (u *UI) changeUser(w http.ResponseWriter, r *http.Request, field, done string, form url.Values, change func(name, by string) error) {
	name := r.PathValue("name")
	a, err := u.app.Account(r.Context(), name)
	if err == nil {
		p, _ := PrincipalFrom(r.Context())
		if err = change(name, p.Username); err == nil {
			http.Redirect(w, r, "/ui/users/"+url.PathEscape(name)+"?done="+done, http.StatusSeeOther)
			return
		}
		status, key := http.StatusUnprocessableEntity, "users.err_org"
		switch {
		case errors.Is(err, app.ErrForbidden): // the user may be managed here, not moved there
			status, key = http.StatusForbidden, "users.err_org_scope"
		case !errors.Is(err, app.ErrInvalid):
			u.fail(w, r, err)
			return
		case name == p.Username:
			key = "users.err_self"
		case !a.Local:
			key = "users.err_oidc"
		}
		u.showUser(w, r, status, form, map[string]string{field: u.tr(r).Msg(key)})
		return
	}
	switch {
	case errors.Is(err, app.ErrNotFound):
		u.errorPage(w, r, http.StatusNotFound, "error.not_found")
	case errors.Is(err, app.ErrForbidden): // another organization's user
		u.errorPage(w, r, http.StatusForbidden, "error.forbidden")
	default:
		u.fail(w, r, err)
	}
}

func (u *UI) setUserRole(w http.ResponseWriter, r *http.Request) {
	role, org := r.PostFormValue("role"), r.PostFormValue("org")
	form := url.Values{"role": {role}, "org": {org}}
	if !slices.Contains(Roles, role) {
		u.showUser(w, r, http.StatusUnprocessableEntity, form, map[string]string{"role": u.tr(r).Msg("users.err_role")})
		return
	}
	u.changeUser(w, r, "org", "role", form, func(name, by string) error {
		return u.app.SetRole(r.Context(), name, by, role, org)
	})
}

func (u *UI) setUserPassword(w http.ResponseWriter, r *http.Request) {
	password := r.PostFormValue("password")
	if k := checkPassword(password); k != "" {
		u.showUser(w, r, http.StatusUnprocessableEntity, nil, map[string]string{"password": u.tr(r).Msg(k, MinPasswordLength)})
		return
	}
	hash, err := HashPassword(password)
	if err != nil {
		u.fail(w, r, err)
		return
	}
	u.changeUser(w, r, "password", "password", nil, func(name, by string) error {
		return u.app.SetPassword(r.Context(), name, by, hash)
	})
}

func (u *UI) disableUser(w http.ResponseWriter, r *http.Request) {
	u.changeUser(w, r, "disable", "disabled", nil, func(name, by string) error {
		return u.app.DisableUser(r.Context(), name, by)
	})
}

func (u *UI) enableUser(w http.ResponseWriter, r *http.Request) {
	u.changeUser(w, r, "disable", "enabled", nil, func(name, by string) error {
		return u.app.EnableUser(r.Context(), name, by)
	})
}
