package scenario_test

import (
	"context"
	"html"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/refbus/refbus/services/education"
	"github.com/refbus/refbus/services/health"
	"github.com/refbus/refbus/services/internal/core"
	"github.com/refbus/refbus/services/internal/core/directory"
	"github.com/refbus/refbus/services/internal/core/kind"
	"github.com/refbus/refbus/services/internal/core/nodetest"
	"github.com/refbus/refbus/services/internal/core/web"
	"github.com/refbus/refbus/services/kinds"
	"github.com/refbus/refbus/services/ngo"
	"github.com/refbus/refbus/services/social"
)

// password is every test user's password.
const password = "correct horse battery staple"

// uiNetwork is network with the caseworker UI on every node, and users
// <node>-supervisor and <node>-auditor at each, who see all of its
// organizations, and <org>-caseworker for each organization, who sees its
// own; tune changes every node's config after that.
func uiNetwork(t *testing.T, demo []demoNode, tune func(*core.Config)) *nodetest.Network {
	t.Helper()
	n := network(t, demo, map[string]func(*core.Config){"": func(c *core.Config) {
		c.Web = web.Mount(web.Config{Poll: 100 * time.Millisecond, Logger: nodetest.Logger(t)})
		if tune != nil {
			tune(c)
		}
	}})
	if demo == nil {
		for _, k := range kinds.Names {
			demo = append(demo, demoNode{name: k, kind: k, orgs: []directory.Organization{{ID: k}}})
		}
	}
	for _, nd := range demo {
		users := []web.User{
			{Username: nd.name + "-supervisor", Name: "Test supervisor of " + nd.name, Role: web.RoleSupervisor, Password: password},
			{Username: nd.name + "-auditor", Name: "Test auditor of " + nd.name, Role: web.RoleAuditor, Password: password},
		}
		for _, o := range nd.orgs {
			users = append(users, web.User{Username: o.ID + "-caseworker", Name: "Test caseworker of " + o.ID, Role: web.RoleCaseworker, Org: o.ID, Password: password})
		}
		for _, u := range users {
			if err := web.SeedUser(context.Background(), n.App(nd.name), u); err != nil {
				t.Fatal(err)
			}
		}
	}
	return n
}

// signedIn is an HTTP client signed in as user at the UI at base, that
// follows no redirects.
type signedIn struct {
	t    *testing.T
	base string
	c    *http.Client
}

func signIn(t *testing.T, base, user string) *signedIn {
	t.Helper()
	jar, _ := cookiejar.New(nil)
	s := &signedIn{t: t, base: base, c: &http.Client{Jar: jar, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}}
	if res, _ := s.form("/ui/login", url.Values{"username": {user}, "password": {password}}); res.StatusCode != http.StatusSeeOther || res.Header.Get("Location") != "/ui/inbox" {
		t.Fatalf("sign in as %s at %s: %s", user, base, res.Status)
	}
	return s
}

func (s *signedIn) do(req *http.Request) (*http.Response, string) {
	s.t.Helper()
	res, err := s.c.Do(req)
	if err != nil {
		s.t.Fatalf("%s %s: %v", req.Method, req.URL, err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	return res, string(b)
}

// form posts a form as a browser on the same site does.
func (s *signedIn) form(path string, v url.Values) (*http.Response, string) {
	s.t.Helper()
	req, err := http.NewRequest(http.MethodPost, s.base+path, strings.NewReader(v.Encode()))
	if err != nil {
		s.t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Sec-Fetch-Site", "same-origin")
	return s.do(req)
}

func (s *signedIn) get(path string) string {
	s.t.Helper()
	req, err := http.NewRequest(http.MethodGet, s.base+path, nil)
	if err != nil {
		s.t.Fatal(err)
	}
	res, body := s.do(req)
	if res.StatusCode != http.StatusOK {
		s.t.Fatalf("GET %s: %s", path, res.Status)
	}
	return body
}

var optionRe = regexp.MustCompile(`<option value="([^"]+)"[^>]*>([^<]*)</option>`)

// options are the choices of the select id of a page, value to text.
func options(t *testing.T, page, id string) map[string]string {
	t.Helper()
	re := regexp.MustCompile(`(?s)<select id="` + id + `".*?</select>`)
	sel := re.FindString(page)
	if sel == "" {
		t.Fatalf("the page has no select #%s", id)
	}
	out := map[string]string{}
	for _, m := range optionRe.FindAllStringSubmatch(sel, -1) {
		out[m[1]] = html.UnescapeString(m[2])
	}
	return out
}

var optgroupRe = regexp.MustCompile(`(?s)<optgroup label="([^"]*)">(.*?)</optgroup>`)

// optgroups are the groups of options of the select id of a page, by the
// organization of their options' values (org/service), to their labels.
func optgroups(t *testing.T, page, id string) map[string]string {
	t.Helper()
	sel := regexp.MustCompile(`(?s)<select id="` + id + `".*?</select>`).FindString(page)
	out := map[string]string{}
	for _, g := range optgroupRe.FindAllStringSubmatch(sel, -1) {
		for _, o := range optionRe.FindAllStringSubmatch(g[2], -1) {
			org, _, _ := strings.Cut(o[1], "/")
			out[org] = html.UnescapeString(g[1])
		}
	}
	return out
}

// The UI names every kind of node and every service of the four kinds in
// each of its languages: the catalogues are the core's, the names the
// kinds', so this is checked where both are known.
func TestUINamesEveryKind(t *testing.T) {
	t.Parallel()
	n := uiNetwork(t, nil, nil)
	all := []kind.Kind{health.New(), education.New(), social.New(), ngo.New()}
	// Each node's new-referral form offers the others' organizations, each
	// labelled with its kind, and every service they offer.
	for _, at := range []string{"social", "health"} {
		s := signIn(t, n.Node(at).HTTP.URL, at+"-caseworker")
		for _, lang := range web.Langs {
			if res, _ := s.form("/ui/lang", url.Values{"lang": {lang}, "back": {"/ui/new"}}); res.StatusCode != http.StatusSeeOther {
				t.Fatalf("choose %s at %s: %s", lang, at, res.Status)
			}
			page := s.get("/ui/new")
			if !strings.Contains(page, `<html lang="`+lang+`"`) {
				t.Fatalf("the page at %s is not in %s", at, lang)
			}
			groups, offers := optgroups(t, page, "offer"), options(t, page, "offer")
			for _, k := range all {
				if k.Name() == at {
					continue
				}
				if name, ok := groups[k.Name()]; !ok || strings.TrimSpace(name) == "" || strings.Contains(name, "agency.") || strings.Contains(name, k.Name()) {
					t.Errorf("%s: the UI at %s names the organization of the %s node %q", lang, at, k.Name(), name)
				}
				for _, o := range k.Offers() {
					if name, ok := offers[k.Name()+"/"+o.Name]; !ok || strings.TrimSpace(name) == "" || name == strings.ReplaceAll(o.Name, "_", " ") {
						t.Errorf("%s: the UI at %s names %s's service %s %q: the catalogue has no service.%s", lang, at, k.Name(), o.Name, name, o.Name)
					}
				}
			}
		}
	}
}
