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
	"github.com/refbus/refbus/services/internal/core/kind"
	"github.com/refbus/refbus/services/internal/core/nodetest"
	"github.com/refbus/refbus/services/internal/core/web"
	"github.com/refbus/refbus/services/ngo"
	"github.com/refbus/refbus/services/social"
)

// password is every test user's password.
const password = "correct horse battery staple"

// uiNetwork is network with the caseworker UI on every node, and users
// <node>-caseworker, <node>-supervisor and <node>-auditor at each; tune
// changes every node's config after that.
func uiNetwork(t *testing.T, tune func(*core.Config)) *nodetest.Network {
	t.Helper()
	n := network(t, map[string]func(*core.Config){"": func(c *core.Config) {
		c.Web = web.Mount(web.Config{Poll: 100 * time.Millisecond, Logger: nodetest.Logger(t)})
		if tune != nil {
			tune(c)
		}
	}})
	for _, a := range []string{"health", "education", "social", "ngo"} {
		for _, role := range web.Roles {
			u := web.User{Username: a + "-" + role, Name: "Test " + role + " of " + a, Role: role, Password: password}
			if err := web.SeedUser(context.Background(), n.App(a), u); err != nil {
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

// The UI names every kind of node and every service of the four kinds in
// each of its languages: the catalogues are the core's, the names the
// kinds', so this is checked where both are known.
func TestUINamesEveryKind(t *testing.T) {
	t.Parallel()
	n := uiNetwork(t, nil)
	kinds := []kind.Kind{health.New(), education.New(), social.New(), ngo.New()}
	// Each node's new-referral form offers the others and every service.
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
			nodes, services := options(t, page, "to_agency"), options(t, page, "service")
			for _, k := range kinds {
				if k.Name() == at {
					continue
				}
				if name, ok := nodes[k.Name()]; !ok || strings.TrimSpace(name) == "" || name == "agency."+k.Name() {
					t.Errorf("%s: the UI at %s names the %s node %q", lang, at, k.Name(), name)
				}
				for _, o := range k.Offers() {
					if name, ok := services[o.Name]; !ok || strings.TrimSpace(name) == "" || name == strings.ReplaceAll(o.Name, "_", " ") {
						t.Errorf("%s: the UI at %s names %s's service %s %q: the catalogue has no service.%s", lang, at, k.Name(), o.Name, name, o.Name)
					}
				}
			}
		}
	}
}
