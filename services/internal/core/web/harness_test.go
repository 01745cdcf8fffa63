package web_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/refbus/refbus/pkg/bus"
	"github.com/refbus/refbus/pkg/natstest"
	"github.com/refbus/refbus/pkg/pgtest"
	"github.com/refbus/refbus/pkg/poll"
	"github.com/refbus/refbus/services/internal/agency"
	"github.com/refbus/refbus/services/internal/db"
	"github.com/refbus/refbus/services/internal/web"
	"github.com/refbus/refbus/sql/agency/migrations"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

// password is every test user's password.
const password = "correct horse battery staple"

// apiKey is the test agencies' bearer token key, by agency.
func apiKey(a string) []byte { return []byte("test api key of the " + a + " agency, 32 bytes or more") }

// network is agency services with their UIs on one embedded NATS server,
// each with its own database, and users <agency>-caseworker,
// <agency>-supervisor and <agency>-auditor.
type network struct {
	t    *testing.T
	svcs map[string]*agency.Service
	urls map[string]string
}

func newNetwork(t *testing.T, tune func(a, url string, c *web.Config), agencies ...string) *network {
	t.Helper()
	return newNetworkWith(t, tune, nil, agencies...)
}

// newNetworkWith is newNetwork with a hook on each agency's own config.
func newNetworkWith(t *testing.T, tune func(a, url string, c *web.Config), tuneAgency func(*agency.Config), agencies ...string) *network {
	t.Helper()
	srv := natstest.New(t)
	n := &network{t: t, svcs: map[string]*agency.Service{}, urls: map[string]string{}}
	for _, a := range agencies {
		// The server listens before the service exists, so the UI's
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
		wc := web.Config{APIKey: apiKey(a), Poll: 100 * time.Millisecond, Logger: testLogger()}
		if tune != nil {
			tune(a, base, &wc)
		}
		cfg := agency.Config{
			Agency: a, DatabaseURL: pgtest.New(t, "agency", migrations.Up), NATSURL: srv.ClientURL(),
			NetworkKey: []byte("test network key, 32 bytes or more, shared by all"),
			Consumer:   bus.ConsumerConfig{BackOff: []time.Duration{500 * time.Millisecond}, MaxDeliver: 50},
			Web:        web.Mount(wc),
		}
		if tuneAgency != nil {
			tuneAgency(&cfg)
		}
		ctx, cancel := context.WithCancel(context.Background())
		svc, err := agency.New(ctx, cfg, testLogger())
		if err != nil {
			cancel()
			t.Fatalf("start %s: %v", a, err)
		}
		handler = svc.Handler()
		hs.Start()
		done := make(chan error, 1)
		go func() { done <- svc.Run(ctx) }()
		t.Cleanup(func() {
			cancel()
			hs.CloseClientConnections()
			hs.Close()
			<-done
			svc.Close()
		})
		for _, role := range web.Roles {
			u := web.User{Username: a + "-" + role, Name: "Test " + role + " of " + a, Role: role, Password: password}
			if err := web.SeedUser(ctx, db.New(svc.Pool()), u); err != nil {
				t.Fatal(err)
			}
		}
		n.svcs[a], n.urls[a] = svc, hs.URL
	}
	return n
}

func testLogger() *slog.Logger {
	if testing.Verbose() {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelInfo}))
	}
	return slog.New(slog.DiscardHandler)
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

// refer sends a referral from a to to over the service, and waits until to
// has it.
func (n *network) refer(from, to, service, note string) agency.Referral {
	n.t.Helper()
	c, err := n.svcs[from].RecordConsent(context.Background(), agency.NewConsent{GivenBy: "the mother", ToAgency: to, Purpose: "help for the family",
		DataCategories: []string{agency.CategorySummary}, ExpiresAt: time.Now().Add(24 * time.Hour)})
	if err != nil {
		n.t.Fatal(err)
	}
	r, err := n.svcs[from].CreateReferral(context.Background(), agency.NewReferral{ToAgency: to, Service: service, Note: note, ConsentID: c.ID})
	if err != nil {
		n.t.Fatal(err)
	}
	poll.Until(n.t, 20*time.Second, func() error {
		_, err := n.svcs[to].Referral(context.Background(), r.ID)
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
