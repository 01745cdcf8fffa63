package core_test

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/refbus/refbus/services/internal/core"
	"github.com/refbus/refbus/services/internal/core/app"
	"github.com/refbus/refbus/services/internal/core/directory"
	"github.com/refbus/refbus/services/internal/core/nodetest"
)

// Every way a referral request can be wrong is answered with a problem the
// caller can act on, and none of them writes anything. An organization
// the directory does not list is named as such, with some it does list;
// a service the organization does not offer, with those it does; an
// organization to refer on behalf of that this node does not host, with
// those it does.
func TestAPIBadReferralsAnswerProblems(t *testing.T) {
	t.Parallel()
	n := nodetest.New(t)
	n.Start("clinic", plain(healthCheck), nil)
	n.Start("legal_aid", plain(legalHelp), func(c *core.Config) {
		c.Organizations = []directory.Organization{nodetest.Org("kz-legal-aid-almaty", legalHelp), nodetest.Org("kz-legal-aid-shymkent", familySupport)}
	})

	const consent = `"consent_id":"0193a000-0000-7000-a000-000000000001"`
	tooBig := `{"to_org":"kz-legal-aid-almaty","service":"legal_help","note":"` + strings.Repeat("a", 1<<20) + `"}`
	cases := []struct {
		name   string
		body   string
		status int
		want   []string
	}{
		{"unknown organization", `{"to_org":"police","service":"legal_help","note":"n",` + consent + `}`, 422,
			[]string{"to_org", `"police"`, "not an organization of the network", "kz-legal-aid-almaty, kz-legal-aid-shymkent", "GET /api/v1/directory"}},
		{"service the organization does not offer", `{"to_org":"kz-legal-aid-shymkent","service":"legal_help","note":"n",` + consent + `}`, 422,
			[]string{`kz-legal-aid-shymkent does not offer the service "legal_help"`, "it offers family_support"}},
		{"from an organization of another node", `{"to_org":"kz-legal-aid-almaty","from_org":"kz-legal-aid-shymkent","service":"legal_help","note":"n",` + consent + `}`, 422,
			[]string{"from_org", `"kz-legal-aid-shymkent"`, "not an organization of this node", "it hosts clinic"}},
		{"itself", `{"to_org":"clinic","service":"legal_help","note":"n",` + consent + `}`, 422, []string{"to_org", "organization of this node", "another node"}},
		{"a node, not an organization", `{"to_org":"legal_aid","service":"legal_help","note":"n",` + consent + `}`, 422, []string{"to_org", `"legal_aid"`, "not an organization"}},
		{"no service", `{"to_org":"kz-legal-aid-almaty","note":"n"}`, 422, []string{"service"}},
		{"no note", `{"to_org":"kz-legal-aid-almaty","service":"legal_help"}`, 422, []string{"note"}},
		{"no to_org", `{"service":"legal_help","note":"n"}`, 422, []string{"to_org"}},
		{"bad json", `{"to_org":`, 400, []string{"JSON"}},
		{"body over 1 MiB", tooBig, 413, []string{"too large"}},
		{"case_id not a uuid", `{"to_org":"kz-legal-aid-almaty","service":"legal_help","note":"n","case_id":"not-a-uuid"}`, 422, []string{"case_id", "UUID"}},
		{"service too long", `{"to_org":"kz-legal-aid-almaty","service":"` + strings.Repeat("s", 101) + `","note":"n"}`, 422, []string{"service", "100"}},
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
		n.Consented("clinic", fmt.Sprintf(`{"to_org":"legal_aid","service":"legal_help","note":"n","case_id":%q}`, caseID)))
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
