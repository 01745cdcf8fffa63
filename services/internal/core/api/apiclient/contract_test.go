package apiclient_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/refbus/refbus/pkg/pgtest"
	"github.com/refbus/refbus/services/internal/core"
	"github.com/refbus/refbus/services/internal/core/api/apiclient"
	"github.com/refbus/refbus/services/internal/core/directory"
	"github.com/refbus/refbus/services/internal/core/nodetest"
	"github.com/refbus/refbus/services/internal/core/web"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

// apiKey signs the bearer tokens of each test node's systems.
func apiKey(node string) []byte {
	return []byte("contract test key of the " + node + " node, 32 bytes or more")
}

// startNode runs node, offering service, with the sign-in in front of its
// API, as in production.
func startNode(n *nodetest.Network, node, service string) *nodetest.Node {
	k := nodetest.PlainKind("plain", directory.Offer{Name: service, Title: service, Eligibility: "families", Languages: []string{"ru"}, Area: "Almaty"})
	return n.Start(node, k, func(c *core.Config) {
		c.Web = web.Mount(web.Config{APIKey: apiKey(node), Poll: 100 * time.Millisecond, Logger: nodetest.Logger(n.T)})
	})
}

// client is the generated client of nd, calling as one of its agency's
// systems.
func client(t *testing.T, nd *nodetest.Node) *apiclient.ClientWithResponses {
	t.Helper()
	tok, err := web.IssueToken(apiKey(nd.Name()), nd.Name(), "", nd.Name()+"-case-system", web.RoleCaseworker, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	c, err := apiclient.NewClientWithResponses(nd.HTTP.URL, apiclient.WithRequestEditorFn(func(_ context.Context, r *http.Request) error {
		r.Header.Set("Authorization", "Bearer "+tok)
		return nil
	}))
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// TestContract holds the API to its OpenAPI document through a client that
// oapi-codegen generated from it: the document a node serves is the one
// committed here, the client generated from it is the one committed here,
// and that client carries a referral from one organization to another,
// which accepts, starts and completes it. It fails when the contract
// drifts from either side.
func TestContract(t *testing.T) {
	t.Parallel()
	n := nodetest.New(t)
	health := startNode(n, "health", "child_health_check")
	ngo := startNode(n, "ngo", "psychological_help")

	res, err := http.Get(health.HTTP.URL + "/openapi.json") // public: no token
	if err != nil {
		t.Fatal(err)
	}
	body, err := io.ReadAll(res.Body)
	res.Body.Close()
	if err != nil || res.StatusCode != http.StatusOK {
		t.Fatalf("GET /openapi.json: %d %v", res.StatusCode, err)
	}
	var served bytes.Buffer
	if err := json.Indent(&served, body, "", "  "); err != nil {
		t.Fatalf("/openapi.json is not JSON: %v", err)
	}
	served.WriteByte('\n')

	t.Run("document", func(t *testing.T) {
		checkGenerated(t, "openapi.json", "the document the node serves", served.Bytes())
	})
	t.Run("client", func(t *testing.T) {
		checkGenerated(t, "client.gen.go", "the client oapi-codegen generates from the served document", generateClient(t, served.Bytes()))
	})
	t.Run("session cookie", func(t *testing.T) {
		checkSessionScheme(t, health, served.Bytes())
	})
	t.Run("referral between two organizations", func(t *testing.T) {
		referAcceptComplete(t, health, ngo)
	})
}

// checkGenerated fails unless the committed file name holds want (what
// describes).
func checkGenerated(t *testing.T, name, what string, want []byte) {
	t.Helper()
	got, err := os.ReadFile(name)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("%s differs from %s (first difference: %s): regenerate it with `go generate ./services/internal/core/api/apiclient` and commit it", name, what, firstDiff(got, want))
	}
}

// firstDiff shows the first line where got and want differ.
func firstDiff(got, want []byte) string {
	g, w := strings.Split(string(got), "\n"), strings.Split(string(want), "\n")
	for i := 0; i < len(g) || i < len(w); i++ {
		var gl, wl string
		if i < len(g) {
			gl = g[i]
		}
		if i < len(w) {
			wl = w[i]
		}
		if gl != wl {
			return fmt.Sprintf("line %d is %q, want %q", i+1, gl, wl)
		}
	}
	return "none"
}

// generateClient runs oapi-codegen on doc as go generate runs it on
// openapi.json: the same version, the same configuration.
func generateClient(t *testing.T, doc []byte) []byte {
	t.Helper()
	src, err := os.ReadFile("doc.go")
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`(?m)^//go:generate go run (\S+/oapi-codegen@v\S+) -config oapi-codegen.yaml openapi.json$`).FindSubmatch(src)
	if m == nil {
		t.Fatal("doc.go has no go:generate line that runs oapi-codegen on openapi.json")
	}
	dir := t.TempDir()
	cfg, err := os.ReadFile("oapi-codegen.yaml")
	if err != nil {
		t.Fatal(err)
	}
	for name, b := range map[string][]byte{"oapi-codegen.yaml": cfg, "openapi.json": doc} {
		if err := os.WriteFile(filepath.Join(dir, name), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	cmd := exec.Command("go", "run", string(m[1]), "-config", "oapi-codegen.yaml", "openapi.json")
	cmd.Dir = dir
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("%s: %v\n%s", cmd, err, out)
	}
	b, err := os.ReadFile(filepath.Join(dir, "client.gen.go"))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// checkSessionScheme: the session cookie the document names is the one a
// caseworker gets by signing in (package api names it, package web sets it).
func checkSessionScheme(t *testing.T, nd *nodetest.Node, doc []byte) {
	var d struct {
		Components struct {
			SecuritySchemes map[string]struct {
				Type, In, Name string
			} `json:"securitySchemes"`
		} `json:"components"`
	}
	if err := json.Unmarshal(doc, &d); err != nil {
		t.Fatal(err)
	}
	want := d.Components.SecuritySchemes["session"]
	if want.Type != "apiKey" || want.In != "cookie" {
		t.Fatalf("the session scheme is %+v, want a cookie", want)
	}
	u := web.User{Username: "contract-caseworker", Name: "Caseworker", Role: web.RoleCaseworker, Password: "correct horse battery staple"}
	if err := web.SeedUser(context.Background(), nd.App(), u); err != nil {
		t.Fatal(err)
	}
	hc := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	res, err := hc.PostForm(nd.HTTP.URL+"/ui/login", url.Values{"username": {u.Username}, "password": {u.Password}})
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != http.StatusSeeOther {
		t.Fatalf("sign in: %s", res.Status)
	}
	for _, c := range res.Cookies() {
		if c.Name == want.Name && c.Value != "" {
			return
		}
	}
	t.Errorf("signing in set the cookies %v, not the session cookie %q the document names", res.Cookies(), want.Name)
}

// referAcceptComplete: health refers a family to ngo under the family's
// consent; ngo accepts, starts and completes it; each sees each move. The problems
// the document declares are the ones that come back.
func referAcceptComplete(t *testing.T, from, to *nodetest.Node) {
	ctx := context.Background()
	fc, tc := client(t, from), client(t, to)

	consent, err := fc.RecordConsentWithResponse(ctx, apiclient.RecordConsentJSONRequestBody{
		GivenBy: "the mother", ToOrg: to.Name(), Purpose: "psychological help",
		DataCategories: &[]apiclient.PostConsentInputBodyDataCategories{apiclient.PostConsentInputBodyDataCategoriesSummary},
		ExpiresAt:      time.Now().Add(24 * time.Hour),
	})
	reached(t, "record consent", err)
	if consent.JSON201 == nil {
		t.Fatalf("record consent: %d %s", consent.StatusCode(), consent.Body)
	}
	created, err := fc.CreateReferralWithResponse(ctx, apiclient.CreateReferralJSONRequestBody{
		ToOrg: to.Name(), Service: "psychological_help", Note: "mother and two children under strain", ConsentId: consent.JSON201.Id,
	})
	reached(t, "refer", err)
	if created.JSON201 == nil {
		t.Fatalf("refer: %d %s", created.StatusCode(), created.Body)
	}
	r := created.JSON201
	if r.Status != "requested" || r.FromAgency != from.Name() || r.ToAgency != to.Name() || r.FromOrg != from.Name() || r.ToOrg != to.Name() || r.ConsentId == nil || *r.ConsentId != consent.JSON201.Id {
		t.Fatalf("the new referral: %s", created.Body)
	}

	// sees waits until c reads the referral in status.
	sees := func(c *apiclient.ClientWithResponses, status string) {
		t.Helper()
		nodetest.Eventually(t, 30*time.Second, func() error {
			got, err := c.GetReferralWithResponse(ctx, r.Id)
			if err != nil {
				return err
			}
			if got.JSON200 == nil {
				return fmt.Errorf("get referral: %d %s", got.StatusCode(), got.Body)
			}
			if got.JSON200.Status != status {
				return fmt.Errorf("status %q, want %q", got.JSON200.Status, status)
			}
			return nil
		})
	}
	sees(tc, "received")

	accepted, err := tc.AcceptReferralWithResponse(ctx, r.Id, apiclient.AcceptReferralJSONRequestBody{})
	reached(t, "accept", err)
	if accepted.JSON200 == nil || accepted.JSON200.Status != "accepted" {
		t.Fatalf("accept: %d %s", accepted.StatusCode(), accepted.Body)
	}
	sees(fc, "accepted")

	reason := "the family moved"
	cancel, err := tc.CancelReferralWithResponse(ctx, r.Id, apiclient.CancelReferralJSONRequestBody{Reason: &reason})
	reached(t, "cancel", err)
	if cancel.ApplicationproblemJSON403 == nil {
		t.Errorf("the receiver cancels: %d %s, want a 403 problem (the sender's move)", cancel.StatusCode(), cancel.Body)
	}

	started, err := tc.StartReferralWithResponse(ctx, r.Id, apiclient.StartReferralJSONRequestBody{})
	reached(t, "start", err)
	if started.JSON200 == nil || started.JSON200.Status != "in_progress" {
		t.Fatalf("start: %d %s", started.StatusCode(), started.Body)
	}
	sees(fc, "in_progress")

	outcome := "the family met the psychologist twice"
	completed, err := tc.CompleteReferralWithResponse(ctx, r.Id, apiclient.CompleteReferralJSONRequestBody{Outcome: &outcome})
	reached(t, "complete", err)
	if completed.JSON200 == nil || completed.JSON200.Status != "completed" {
		t.Fatalf("complete: %d %s", completed.StatusCode(), completed.Body)
	}
	sees(fc, "completed")

	again, err := tc.CompleteReferralWithResponse(ctx, r.Id, apiclient.CompleteReferralJSONRequestBody{Outcome: &outcome})
	reached(t, "complete again", err)
	if p := again.ApplicationproblemJSON409; p == nil || p.Detail == nil || !strings.Contains(*p.Detail, "complete") {
		t.Errorf("complete twice: %d %s, want a 409 problem", again.StatusCode(), again.Body)
	}
	missing, err := fc.GetReferralWithResponse(ctx, consent.JSON201.Id)
	reached(t, "get a missing referral", err)
	if missing.ApplicationproblemJSON404 == nil {
		t.Errorf("a referral that is not there: %d %s, want a 404 problem", missing.StatusCode(), missing.Body)
	}
	anon, err := apiclient.NewClientWithResponses(from.HTTP.URL)
	if err != nil {
		t.Fatal(err)
	}
	unsigned, err := anon.GetReferralWithResponse(ctx, r.Id)
	reached(t, "get without a token", err)
	if unsigned.ApplicationproblemJSON401 == nil {
		t.Errorf("without a token: %d %s, want a 401 problem", unsigned.StatusCode(), unsigned.Body)
	}
}

// reached fails the test, saying what it did, if a request got no answer.
func reached(t *testing.T, what string, err error) {
	t.Helper()
	if err != nil {
		t.Fatalf("%s: %v", what, err)
	}
}
