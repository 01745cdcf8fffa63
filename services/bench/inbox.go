package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/refbus/refbus/services/internal/network"

	"github.com/jackc/pgx/v5"
	"github.com/refbus/refbus/pkg/bus"
	"github.com/refbus/refbus/pkg/natslocal"
	"github.com/refbus/refbus/pkg/pglocal"
	"github.com/refbus/refbus/services/bench/internal/benchdb"
	"github.com/refbus/refbus/services/internal/core"
	"github.com/refbus/refbus/services/internal/core/web"
	"github.com/refbus/refbus/services/ngo"
)

// inboxResult is how fast a caseworker's pages answer on a full store.
type inboxResult struct {
	referrals int
	// p95s are the measured page sets' p95s, in pageSets' order.
	p95s []time.Duration
}

// String is the result as the bench's last line reports it.
func (r inboxResult) String() string {
	s := ""
	for i, p := range r.p95s {
		s += fmt.Sprintf("%s_p95_ms=%.1f ", pageSets[i].name, ms(p))
	}
	return s + fmt.Sprintf("inbox_referrals=%d", r.referrals)
}

// pageSet is a figure of the inbox run: requests cycle through paths.
type pageSet struct {
	name string
	// paths are the pages, given the seeded store.
	paths func(s seeded) []string
	// api: asked with a bearer token; otherwise in the caseworker's
	// session.
	api bool
}

// seeded is what the pages need to know of the seeded store.
type seeded struct {
	// month is the day a month back (YYYY-MM-DD).
	month string
	// caseID is a case with referrals of the caseworker's organization,
	// two to four of them.
	caseID string
}

// pageSets are the inbox run's figures: a new one (the needs-action view,
// a case page) is a line here.
var pageSets = []pageSet{
	{name: "inbox", paths: func(s seeded) []string {
		return []string{"/ui/inbox", "/ui/inbox?status=on_hold", "/ui/inbox?service=crisis_shelter", "/ui/inbox?overdue=1",
			"/ui/inbox?from=" + s.month, "/ui/inbox?status=completed&service=legal_help", "/ui/inbox?status=accepted&service=crisis_shelter&overdue=1"}
	}},
	{name: "sent", paths: func(s seeded) []string {
		return []string{"/ui/sent", "/ui/sent?status=in_progress", "/ui/sent?overdue=1", "/ui/sent?from=" + s.month}
	}},
	{name: "action", paths: func(seeded) []string {
		return []string{"/ui/action", "/ui/action?mine=1"}
	}},
	{name: "case", paths: func(s seeded) []string { return []string{"/ui/cases/" + s.caseID} }},
	{name: "inbox_api", api: true, paths: func(seeded) []string { return []string{"/api/v1/inbox?limit=100"} }},
}

// benchInbox seeds n referrals into one node's store (ngo, four
// organizations, either way; benchdb's ReferralSeed), and measures, over
// HTTP on loopback, requests answers of each of pageSets, signed in as a
// caseworker of the node's largest organization, or with a bearer token.
// It runs its own Postgres (durable settings) and NATS in a temporary
// directory, removed at the end.
func benchInbox(ctx context.Context, log *slog.Logger, n, requests int) (res inboxResult, err error) {
	res.referrals = n
	dir, err := os.MkdirTemp("", "refbus-inbox-bench-")
	if err != nil {
		return res, err
	}
	defer os.RemoveAll(dir)
	if err := os.Chmod(dir, 0o755); err != nil { // Postgres runs as postgres when this runs as root
		return res, err
	}
	pg, err := pglocal.Start(ctx, pglocal.Options{Dir: filepath.Join(dir, "pg"), Settings: pgSettings, Logger: log})
	if err != nil {
		return res, err
	}
	defer func() { err = errors.Join(err, pg.Stop(context.WithoutCancel(ctx))) }()
	ns, err := natslocal.Start(natslocal.Options{StoreDir: filepath.Join(dir, "nats"), Port: -1})
	if err != nil {
		return res, err
	}
	defer ns.Shutdown()

	// The caseworker works for the node's largest organization (two in
	// five of its referrals).
	const self, caseworkerOrg = "ngo", "ngo"
	if err := pg.CreateDatabase(ctx, self, ""); err != nil {
		return res, err
	}
	if err := network.Setup(ctx, ns.ClientURL(), bus.StreamConfig{}, bus.ConsumerConfig{}, []string{self}); err != nil {
		return res, err
	}
	apiKey := []byte("inbox bench api key, 32 bytes or more")
	svc, err := core.New(ctx, core.Config{Node: self, DatabaseURL: pg.URL(self), NATSURL: ns.ClientURL(), Web: web.Mount(web.Config{APIKey: apiKey, Logger: log})}, ngo.New(), log)
	if err != nil {
		return res, err
	}
	defer svc.Close()
	conn, err := pgx.Connect(ctx, pg.URL(self))
	if err != nil {
		return res, err
	}
	defer conn.Close(context.WithoutCancel(ctx))
	q := benchdb.New(conn)
	start := time.Now()
	if err := q.ReferralSeed(ctx, benchdb.ReferralSeedParams{Agency: self, Peers: []string{"health", "education", "social"}, N: int32(n)}); err != nil {
		return res, fmt.Errorf("seed referrals: %w", err)
	}
	if err := q.ReferralAnalyze(ctx); err != nil {
		return res, fmt.Errorf("analyze: %w", err)
	}
	// As the node's tick does within a second (the bench does not run
	// the node's loops).
	if _, err := svc.App().FoldCounts(ctx); err != nil {
		return res, err
	}
	const password = "inbox bench password"
	if err := web.SeedUser(ctx, svc.App(), web.User{Username: "bench", Name: "Bench", Role: web.RoleCaseworker, Org: caseworkerOrg, Password: password}); err != nil {
		return res, err
	}
	fmt.Printf("bench: inbox: seeded %d referrals in %s\n", n, time.Since(start).Round(time.Millisecond))

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return res, err
	}
	srv := &http.Server{Handler: svc.Handler(), ReadHeaderTimeout: 5 * time.Second}
	go func() { _ = srv.Serve(ln) }()
	defer srv.Close()
	base := "http://" + ln.Addr().String()

	jar, _ := cookiejar.New(nil)
	c := &http.Client{Jar: jar, Timeout: 30 * time.Second}
	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, base+"/ui/login", strings.NewReader(url.Values{"username": {"bench"}, "password": {password}}.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	if _, err := fetch(c, req); err != nil {
		return res, fmt.Errorf("sign in: %w", err)
	}
	caseID, err := q.ReferralSeedCase(ctx, caseworkerOrg)
	if err != nil {
		return res, fmt.Errorf("seeded case: %w", err)
	}
	sd := seeded{month: time.Now().AddDate(0, -1, 0).Format("2006-01-02"), caseID: caseID.String()}
	token, err := web.IssueToken(apiKey, self, caseworkerOrg, "bench", web.RoleCaseworker, time.Hour)
	if err != nil {
		return res, err
	}
	measure := func(paths []string, auth string) (time.Duration, error) {
		var took []time.Duration
		for i := range requests + requests/10 {
			req, _ := http.NewRequestWithContext(ctx, http.MethodGet, base+paths[i%len(paths)], nil)
			if auth != "" {
				req.Header.Set("Authorization", "Bearer "+auth)
			}
			t0 := time.Now()
			if _, err := fetch(c, req); err != nil {
				return 0, err
			}
			if i >= requests/10 { // the first tenth warms the caches
				took = append(took, time.Since(t0))
			}
		}
		slices.Sort(took)
		return took[len(took)*95/100], nil
	}
	for _, set := range pageSets {
		auth := ""
		if set.api {
			auth = token
		}
		p95, err := measure(set.paths(sd), auth)
		if err != nil {
			return res, fmt.Errorf("%s: %w", set.name, err)
		}
		res.p95s = append(res.p95s, p95)
	}
	return res, nil
}

// fetch sends req and reads the whole answer, which must be 200 after
// redirects.
func fetch(c *http.Client, req *http.Request) ([]byte, error) {
	r, err := c.Do(req)
	if err != nil {
		return nil, err
	}
	defer r.Body.Close()
	b, err := io.ReadAll(r.Body)
	if err == nil && r.StatusCode != http.StatusOK {
		err = fmt.Errorf("%s %s: %s", req.Method, req.URL.Path, r.Status)
	}
	return b, err
}

// runInbox runs the inbox run with n referrals into res and prints its
// figures.
func runInbox(ctx context.Context, log *slog.Logger, n int, res *result) error {
	var err error
	if res.inbox, err = benchInbox(ctx, log, n, 200); err != nil {
		return fmt.Errorf("inbox bench: %w", err)
	}
	fmt.Printf("inbox:          %d referrals in the ngo's store, p95 of each page set (goal: 50 ms):", res.inbox.referrals)
	for i, p := range res.inbox.p95s {
		fmt.Printf(" %s %.1f ms", pageSets[i].name, ms(p))
	}
	fmt.Println()
	return nil
}
