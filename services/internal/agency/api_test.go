package agency_test

import (
	"fmt"
	"mime"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/refbus/refbus/services/internal/agency"
)

// problemDoc is an RFC 9457 problem as huma writes it.
type problemDoc struct {
	Type   string `json:"type"`
	Title  string `json:"title"`
	Status int    `json:"status"`
	Detail string `json:"detail"`
	Errors []struct {
		Message  string `json:"message"`
		Location string `json:"location"`
	} `json:"errors"`
}

// text is everything in the problem a person reads: the detail and each
// error with where it is.
func (p problemDoc) text() string {
	parts := []string{p.Detail}
	for _, e := range p.Errors {
		parts = append(parts, e.Location+": "+e.Message)
	}
	return strings.Join(parts, " | ")
}

// checkProblem asserts that the response is a problem document with the
// given status whose detail or errors mention each of wantText.
func checkProblem(t *testing.T, status int, body string, header http.Header, wantStatus int, wantText ...string) problemDoc {
	t.Helper()
	if status != wantStatus {
		t.Errorf("status %d, want %d; body %s", status, wantStatus, body)
	}
	ct := header.Get("Content-Type")
	if mt, _, err := mime.ParseMediaType(ct); err != nil || mt != "application/problem+json" {
		t.Errorf("Content-Type %q, want application/problem+json", ct)
	}
	p := decode[problemDoc](t, body)
	t.Logf("%d %s: %s", status, p.Title, p.text())
	if p.Status != status {
		t.Errorf(`problem "status" is %d, the HTTP status is %d`, p.Status, status)
	}
	if strings.TrimSpace(p.Title) == "" {
		t.Errorf(`problem has no "title": %s`, body)
	}
	if strings.TrimSpace(p.text()) == "" {
		t.Errorf(`problem has neither "detail" nor "errors" with messages: %s`, body)
	}
	for _, w := range wantText {
		if !strings.Contains(p.text(), w) {
			t.Errorf("problem does not tell the caller about %q: %q", w, p.text())
		}
	}
	return p
}

// Every way a referral request can be wrong is answered with a problem the
// caller can act on, and none of them writes anything.
func TestAPIBadReferralsAnswerProblems(t *testing.T) {
	t.Parallel()
	n := newNetwork(t, "health")

	tooBig := `{"to_agency":"ngo","service":"legal_help","note":"` + strings.Repeat("a", 1<<20) + `"}`
	cases := []struct {
		name   string
		body   string
		status int
		want   []string
	}{
		{"unknown agency", `{"to_agency":"police","service":"legal_help","note":"n"}`, 422, []string{"to_agency", "education", "social", "ngo"}},
		{"itself", `{"to_agency":"health","service":"legal_help","note":"n","consent_id":"0193a000-0000-7000-a000-000000000001"}`, 422, []string{"to_agency", "another agency", "education"}},
		{"no service", `{"to_agency":"ngo","note":"n"}`, 422, []string{"service"}},
		{"no note", `{"to_agency":"ngo","service":"legal_help"}`, 422, []string{"note"}},
		{"no to_agency", `{"service":"legal_help","note":"n"}`, 422, []string{"to_agency"}},
		{"bad json", `{"to_agency":`, 400, []string{"JSON"}},
		{"body over 1 MiB", tooBig, 413, []string{"too large"}},
		{"case_id not a uuid", `{"to_agency":"ngo","service":"legal_help","note":"n","case_id":"not-a-uuid"}`, 422, []string{"case_id", "UUID"}},
		{"service too long", `{"to_agency":"ngo","service":"` + strings.Repeat("s", 101) + `","note":"n"}`, 422, []string{"service", "100"}},
	}
	// Subtests run one after another: n.do reports through the parent test.
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			status, body, header := n.do("health", "POST", "/api/v1/referrals", tc.body)
			if len(body) > 2000 {
				body = body[:2000] + "..."
			}
			checkProblem(t, status, body, header, tc.status, tc.want...)
		})
	}

	// Nothing was half-written.
	c := counts(t, n, "health")
	for k, v := range c {
		if strings.HasPrefix(k, "outbox ") && v != 0 {
			t.Errorf("rejected requests left outbox rows: %v", c)
		}
	}
	status, body, _ := n.do("health", "GET", "/api/v1/referrals", "")
	if status != 200 {
		t.Fatalf("list sent: %d %s", status, body)
	}
	if sent := decode[struct{ Referrals []agency.Referral }](t, body); len(sent.Referrals) != 0 {
		t.Errorf("rejected requests left referrals: %+v", sent.Referrals)
	}
}

// Reading a referral that is not there, or by an id that is not one, is a
// problem, not an empty answer.
func TestAPIGetReferralProblems(t *testing.T) {
	t.Parallel()
	n := newNetwork(t, "health")
	missing := uuid.New().String()
	cases := []struct {
		name   string
		path   string
		status int
		want   []string
	}{
		{"unknown id", "/api/v1/referrals/" + missing, 404, []string{missing}},
		{"not a uuid", "/api/v1/referrals/not-a-uuid", 422, []string{"id", "UUID"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			status, body, header := n.do("health", "GET", tc.path, "")
			checkProblem(t, status, body, header, tc.status, tc.want...)
		})
	}
}

// A referral sent into an existing case keeps that case, at the sender and,
// once delivered, at the receiver.
func TestAPIReferralKeepsCaseID(t *testing.T) {
	t.Parallel()
	n := newNetwork(t, "health", "ngo")
	caseID := uuid.New()

	status, body, _ := n.do("health", "POST", "/api/v1/referrals",
		n.consented("health", fmt.Sprintf(`{"to_agency":"ngo","service":"legal_help","note":"n","case_id":%q}`, caseID)))
	if status != 201 {
		t.Fatalf("create: %d %s", status, body)
	}
	created := decode[agency.Referral](t, body)
	if created.CaseID != caseID {
		t.Fatalf("created referral has case_id %s, want %s", created.CaseID, caseID)
	}
	status, body, _ = n.do("health", "GET", "/api/v1/referrals/"+created.ID.String(), "")
	if status != 200 {
		t.Fatalf("get: %d %s", status, body)
	}
	if got := decode[agency.Referral](t, body); got.CaseID != caseID {
		t.Errorf("health reads case_id %s, want %s", got.CaseID, caseID)
	}
	eventually(t, 10*time.Second, func() error {
		status, body, _ := n.do("ngo", "GET", "/api/v1/referrals/"+created.ID.String(), "")
		if status != 200 {
			return fmt.Errorf("ngo: %d %s", status, body)
		}
		if got := decode[agency.Referral](t, body); got.CaseID != caseID {
			return fmt.Errorf("ngo sees case_id %s, want %s", got.CaseID, caseID)
		}
		return nil
	})
}

// The OpenAPI document and the liveness probe answer.
func TestAPIOpenAPIAndHealthz(t *testing.T) {
	t.Parallel()
	n := newNetwork(t, "health")

	status, body, _ := n.do("health", "GET", "/openapi.json", "")
	if status != 200 {
		t.Fatalf("openapi.json: %d %s", status, body)
	}
	doc := decode[struct {
		Paths map[string]any `json:"paths"`
	}](t, body)
	for _, p := range []string{"/api/v1/referrals", "/api/v1/inbox"} {
		if _, ok := doc.Paths[p]; !ok {
			t.Errorf("openapi.json does not list %s", p)
		}
	}

	status, body, _ = n.do("health", "GET", "/healthz", "")
	if status != 200 {
		t.Fatalf("healthz: %d %s", status, body)
	}
	if h := decode[struct{ Agency, Status string }](t, body); h.Agency != "health" || h.Status != "ok" {
		t.Errorf("healthz: %s", body)
	}
}
