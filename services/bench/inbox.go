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

// inboxResult is how fast a caseworker's inbox answers on a full store.
type inboxResult struct {
	referrals int
	// page is the p95 of the inbox page (HTML, with counts), over the
	// plain inbox and its filters; api the p95 of GET /api/v1/inbox.
	page, api time.Duration
}

// String is the result as the bench's last line reports it.
func (r inboxResult) String() string {
	return fmt.Sprintf("inbox_p95_ms=%.1f inbox_api_p95_ms=%.1f inbox_referrals=%d", ms(r.page), ms(r.api), r.referrals)
}

// benchInbox seeds n received referrals into one agency's store (ngo), and
// measures, over HTTP on loopback, requests answers of the inbox page
// signed in as a caseworker (cycling through the plain inbox and its
// status, service, overdue and date filters) and as many of the list API
// with a bearer token. It runs its own Postgres (durable settings) and NATS
// in a temporary directory, removed at the end.
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

	const self = "ngo"
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
	if err := q.ReferralSeedIncoming(ctx, benchdb.ReferralSeedIncomingParams{FromAgencies: []string{"health", "education", "social"}, Agency: self, N: int32(n)}); err != nil {
		return res, fmt.Errorf("seed referrals: %w", err)
	}
	if err := q.ReferralAnalyze(ctx); err != nil {
		return res, fmt.Errorf("analyze: %w", err)
	}
	const password = "inbox bench password"
	if err := web.SeedUser(ctx, svc.App(), web.User{Username: "bench", Name: "Bench", Role: web.RoleCaseworker, Password: password}); err != nil {
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
	month := time.Now().AddDate(0, -1, 0).Format("2006-01-02")
	pages := []string{"/ui/inbox", "/ui/inbox?status=on_hold", "/ui/inbox?service=crisis_shelter", "/ui/inbox?overdue=1", "/ui/inbox?from=" + month, "/ui/inbox?status=completed&service=legal_help"}
	token, err := web.IssueToken(apiKey, self, "", "bench", web.RoleCaseworker, time.Hour)
	if err != nil {
		return res, err
	}
	measure := func(path func(i int) string, auth string) (time.Duration, error) {
		var took []time.Duration
		for i := range requests + requests/10 {
			req, _ := http.NewRequestWithContext(ctx, http.MethodGet, base+path(i), nil)
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
	if res.page, err = measure(func(i int) string { return pages[i%len(pages)] }, ""); err != nil {
		return res, fmt.Errorf("inbox page: %w", err)
	}
	if res.api, err = measure(func(int) string { return "/api/v1/inbox?limit=100" }, token); err != nil {
		return res, fmt.Errorf("list api: %w", err)
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
