package web_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/refbus/refbus/pkg/pgtest"
	"github.com/refbus/refbus/pkg/poll"
	"github.com/refbus/refbus/schemas"
	"github.com/refbus/refbus/services/internal/core"
	"github.com/refbus/refbus/services/internal/core/app"
	"github.com/refbus/refbus/services/internal/core/directory"
	"github.com/refbus/refbus/services/internal/core/nodetest"
	"github.com/refbus/refbus/services/internal/core/web"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

// password is every test user's password.
const password = "correct horse battery staple"

// apiKey is the test nodes' bearer token key, by node.
func apiKey(a string) []byte { return []byte("test api key of the " + a + " node, 32 bytes or more") }

// services are what each test node offers: the UI needs nodes that take
// referrals, not the work of any kind, so they are plain nodes.
var services = map[string][]string{
	"health":    {"child_health_check", "medical_accompaniment"},
	"education": {"early_intervention_assessment", "school_transfer"},
	"social":    {"family_support", "housing"},
	"ngo":       {"crisis_shelter", "legal_help", "psychological_help", "mothers_home"},
}

// plain is a plain kind whose nodes offer what node name offers.
func plain(name string) *nodetest.Plain {
	var offers []directory.Offer
	for _, s := range services[name] {
		offers = append(offers, directory.Offer{Name: s, Title: strings.ReplaceAll(s, "_", " "), Eligibility: "families", Languages: []string{"ru"}, Area: "Almaty"})
	}
	return nodetest.PlainKind("plain", offers...)
}

// network is nodes with their UIs, each with users <node>-caseworker,
// <node>-supervisor and <node>-auditor; urls are where their UIs are.
type network struct {
	*nodetest.Network
	t    *testing.T
	urls map[string]string
}

func newNetwork(t *testing.T, tune func(a, url string, c *web.Config), nodes ...string) *network {
	t.Helper()
	return newNetworkWith(t, tune, nil, nodes...)
}

// newNetworkWith is newNetwork with a hook on each node's own config.
func newNetworkWith(t *testing.T, tune func(a, url string, c *web.Config), tuneNode func(*core.Config), nodes ...string) *network {
	t.Helper()
	n := &network{Network: nodetest.New(t), t: t, urls: map[string]string{}}
	for _, a := range nodes {
		// The UI's server listens before the node exists, so the UI's
		// config can name its URL (the OIDC redirect).
		var handler http.Handler
		hs := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if os.Getenv("REFBUS_TRACE_HTTP") != "" {
				t.Logf("%s %s %s", a, r.Method, r.URL)
				defer t.Logf("%s %s %s done", a, r.Method, r.URL)
			}
			handler.ServeHTTP(w, r)
		}))
		base := "http://" + hs.Listener.Addr().String()
		wc := web.Config{APIKey: apiKey(a), Poll: 100 * time.Millisecond, Logger: nodetest.Logger(t)}
		if tune != nil {
			tune(a, base, &wc)
		}
		nd := n.Start(a, plain(a), func(c *core.Config) {
			c.Web = web.Mount(wc)
			if tuneNode != nil {
				tuneNode(c)
			}
		})
		handler = nd.Handler()
		hs.Start()
		// Cleanups run last first: the UI's server closes before the node
		// stops, ending its event streams.
		t.Cleanup(func() {
			hs.CloseClientConnections()
			hs.Close()
		})
		for _, role := range web.Roles {
			u := web.User{Username: a + "-" + role, Name: "Test " + role + " of " + a, Role: role, Password: password}
			if err := web.SeedUser(context.Background(), nd.App(), u); err != nil {
				t.Fatal(err)
			}
		}
		n.urls[a] = hs.URL
	}
	return n
}

// client is a browser without a browser: a cookie jar, no redirects
// followed unless asked.
type client struct {
	t    *testing.T
	base string
	http *http.Client
	// set are the cookies the sign-in set, with their attributes.
	set map[string]*http.Cookie
}

func (n *network) client(a string) *client {
	jar, _ := cookiejar.New(nil)
	return &client{t: n.t, base: n.urls[a], http: &http.Client{Jar: jar, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}}
}

// signIn signs the client in as user, and fails the test if that fails.
func (n *network) signIn(a, user string) *client {
	c := n.client(a)
	res, _ := c.form("/ui/login", url.Values{"username": {user}, "password": {password}})
	if res.StatusCode != http.StatusSeeOther || res.Header.Get("Location") != "/ui/inbox" {
		n.t.Fatalf("sign in as %s at %s: %s", user, a, res.Status)
	}
	c.set = map[string]*http.Cookie{}
	for _, k := range res.Cookies() {
		c.set[k.Name] = k
	}
	return c
}

func (c *client) do(req *http.Request) (*http.Response, string) {
	c.t.Helper()
	res, err := c.http.Do(req)
	if err != nil {
		c.t.Fatalf("%s %s: %v", req.Method, req.URL, err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	return res, string(b)
}

func (c *client) get(path string, hdr ...string) (*http.Response, string) {
	c.t.Helper()
	req, err := http.NewRequest(http.MethodGet, c.base+path, nil)
	if err != nil {
		c.t.Fatal(err)
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	return c.do(req)
}

// form posts a form as a browser on the same site does.
func (c *client) form(path string, v url.Values, hdr ...string) (*http.Response, string) {
	c.t.Helper()
	req, err := http.NewRequest(http.MethodPost, c.base+path, strings.NewReader(v.Encode()))
	if err != nil {
		c.t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Sec-Fetch-Site", "same-origin")
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	return c.do(req)
}

// refer sends a referral from node from to organization to (a node
// hosts one named after it unless configured) over the service, and waits
// until its node has it.
func (n *network) refer(from, to, service, note string) app.Referral {
	n.t.Helper()
	c, err := n.App(from).RecordConsent(context.Background(), app.NewConsent{GivenBy: "the mother", ToOrg: to, Purpose: "help for the family",
		DataCategories: []string{schemas.CategorySummary}, ExpiresAt: time.Now().Add(24 * time.Hour)})
	if err != nil {
		n.t.Fatal(err)
	}
	r, err := n.App(from).CreateReferral(context.Background(), app.NewReferral{ToOrg: to, Service: service, Note: note, ConsentID: c.ID})
	if err != nil {
		n.t.Fatal(err)
	}
	poll.Until(n.t, 20*time.Second, func() error {
		_, err := n.Referral(r.ToAgency, r.ID)
		return err
	})
	return r
}

func wantStatus(t *testing.T, res *http.Response, want int) {
	t.Helper()
	if res.StatusCode != want {
		t.Fatalf("%s %s: %s, want %d", res.Request.Method, res.Request.URL.Path, res.Status, want)
	}
}

func wantContains(t *testing.T, body string, subs ...string) {
	t.Helper()
	for _, s := range subs {
		if !strings.Contains(body, s) {
			t.Fatalf("page lacks %q:\n%s", s, trim(body))
		}
	}
}

func trim(s string) string {
	if len(s) > 3000 {
		return s[:3000] + "…"
	}
	return s
}

func errorf(format string, args ...any) error { return fmt.Errorf(format, args...) }

// cookie returns the client's cookie name, or nil.
func (c *client) cookie(name string) *http.Cookie {
	u, _ := url.Parse(c.base)
	for _, k := range c.http.Jar.Cookies(u) {
		if k.Name == name {
			return k
		}
	}
	return nil
}
