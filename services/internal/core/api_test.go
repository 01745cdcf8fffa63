package core_test

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/refbus/refbus/services/internal/core/app"
	"github.com/refbus/refbus/services/internal/core/nodetest"
)

// Every way a referral request can be wrong is answered with a problem the
// caller can act on, and none of them writes anything. A node the
// directory does not list is named as such, with the nodes it does list.
func TestAPIBadReferralsAnswerProblems(t *testing.T) {
	t.Parallel()
	n := nodetest.New(t)
	n.Start("clinic", plain(healthCheck), nil)
	n.Start("legal_aid", plain(legalHelp), nil)

	tooBig := `{"to_agency":"legal_aid","service":"legal_help","note":"` + strings.Repeat("a", 1<<20) + `"}`
	cases := []struct {
		name   string
		body   string
		status int
		want   []string
	}{
		{"unknown node", `{"to_agency":"police","service":"legal_help","note":"n","consent_id":"0193a000-0000-7000-a000-000000000001"}`, 422, []string{"to_agency", `"police"`, "not a node", "legal_aid"}},
		{"itself", `{"to_agency":"clinic","service":"legal_help","note":"n","consent_id":"0193a000-0000-7000-a000-000000000001"}`, 422, []string{"to_agency", "another node", "legal_aid"}},
		{"no service", `{"to_agency":"legal_aid","note":"n"}`, 422, []string{"service"}},
		{"no note", `{"to_agency":"legal_aid","service":"legal_help"}`, 422, []string{"note"}},
		{"no to_agency", `{"service":"legal_help","note":"n"}`, 422, []string{"to_agency"}},
		{"bad json", `{"to_agency":`, 400, []string{"JSON"}},
		{"body over 1 MiB", tooBig, 413, []string{"too large"}},
		{"case_id not a uuid", `{"to_agency":"legal_aid","service":"legal_help","note":"n","case_id":"not-a-uuid"}`, 422, []string{"case_id", "UUID"}},
		{"service too long", `{"to_agency":"legal_aid","service":"` + strings.Repeat("s", 101) + `","note":"n"}`, 422, []string{"service", "100"}},
	}
	// Subtests run one after another: n.Do reports through the parent test.
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			status, body, header := n.Do("clinic", "POST", "/api/v1/referrals", tc.body)
			if len(body) > 2000 {
				body = body[:2000] + "..."
			}
			checkProblem(t, status, body, header, tc.status, tc.want...)
		})
	}

	// Nothing was half-written.
	if c := n.Counts("clinic"); len(c.Outbox) != 0 {
		t.Errorf("rejected requests left outbox rows: %+v", c.Outbox)
	}
	status, body, _ := n.Do("clinic", "GET", "/api/v1/referrals", "")
	if status != 200 {
		t.Fatalf("list sent: %d %s", status, body)
	}
	if sent := nodetest.Decode[struct{ Referrals []app.Referral }](t, body); len(sent.Referrals) != 0 {
		t.Errorf("rejected requests left referrals: %+v", sent.Referrals)
	}
}

// Reading a referral that is not there, or by an id that is not one, is a
// problem, not an empty answer.
func TestAPIGetReferralProblems(t *testing.T) {
	t.Parallel()
	n := nodetest.New(t)
	n.Start("clinic", plain(healthCheck), nil)
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
			status, body, header := n.Do("clinic", "GET", tc.path, "")
			checkProblem(t, status, body, header, tc.status, tc.want...)
		})
	}
}

// A referral sent into an existing case keeps that case, at the sender and,
// once delivered, at the receiver.
func TestAPIReferralKeepsCaseID(t *testing.T) {
	t.Parallel()
	n := nodetest.New(t)
	n.Start("clinic", plain(healthCheck), nil)
	n.Start("legal_aid", plain(legalHelp), nil)
	caseID := uuid.New()

	status, body, _ := n.Do("clinic", "POST", "/api/v1/referrals",
		n.Consented("clinic", fmt.Sprintf(`{"to_agency":"legal_aid","service":"legal_help","note":"n","case_id":%q}`, caseID)))
	if status != 201 {
		t.Fatalf("create: %d %s", status, body)
	}
	created := nodetest.Decode[app.Referral](t, body)
	if created.CaseID != caseID {
		t.Fatalf("created referral has case_id %s, want %s", created.CaseID, caseID)
	}
	status, body, _ = n.Do("clinic", "GET", "/api/v1/referrals/"+created.ID.String(), "")
	if status != 200 {
		t.Fatalf("get: %d %s", status, body)
	}
	if got := nodetest.Decode[app.Referral](t, body); got.CaseID != caseID {
		t.Errorf("clinic reads case_id %s, want %s", got.CaseID, caseID)
	}
	nodetest.Eventually(t, 30*time.Second, func() error {
		status, body, _ := n.Do("legal_aid", "GET", "/api/v1/referrals/"+created.ID.String(), "")
		if status != 200 {
			return fmt.Errorf("legal_aid: %d %s", status, body)
		}
		if got := nodetest.Decode[app.Referral](t, body); got.CaseID != caseID {
			return fmt.Errorf("legal_aid sees case_id %s, want %s", got.CaseID, caseID)
		}
		return nil
	})
}

// The OpenAPI document and the liveness probe answer; the probe names the
// node.
func TestAPIOpenAPIAndHealthz(t *testing.T) {
	t.Parallel()
	n := nodetest.New(t)
	n.Start("clinic", plain(healthCheck), nil)

	status, body, _ := n.Do("clinic", "GET", "/openapi.json", "")
	if status != 200 {
		t.Fatalf("openapi.json: %d %s", status, body)
	}
	doc := nodetest.Decode[struct {
		Paths map[string]any `json:"paths"`
	}](t, body)
	for _, p := range []string{"/api/v1/referrals", "/api/v1/inbox", "/api/v1/directory", "/api/v1/consents", "/healthz"} {
		if _, ok := doc.Paths[p]; !ok {
			t.Errorf("openapi.json does not list %s", p)
		}
	}

	status, body, _ = n.Do("clinic", "GET", "/healthz", "")
	if status != 200 {
		t.Fatalf("healthz: %d %s", status, body)
	}
	if h := nodetest.Decode[struct{ Node, Status string }](t, body); h.Node != "clinic" || h.Status != "ok" {
		t.Errorf("healthz: %s", body)
	}
}
