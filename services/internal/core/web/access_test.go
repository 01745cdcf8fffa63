package web_test

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"

	"github.com/refbus/refbus/services/internal/core/web"
)

// TestCaseAccessLog: opening a referral's page, and reading the referral
// or its case through the API, each leave a row of who and how; the
// auditor's page shows them newest first and filters by case and by
// user; so does the API; caseworkers see neither.
func TestCaseAccessLog(t *testing.T) {
	t.Parallel()
	n := newNetwork(t, nil, "education", "social")
	r := n.refer("education", "social", "family_support", "Signs of neglect: the child comes to school hungry.")
	other := n.refer("education", "social", "housing", "The family lost its flat.")

	cw := n.signIn("social", "social-caseworker")
	res, _ := cw.get("/ui/referrals/" + r.ID.String())
	wantStatus(t, res, http.StatusOK)
	api := n.client("social")
	res, _ = api.get("/api/v1/cases/"+r.CaseID.String(), "Authorization", bearer(t, "social", "social-case-system", web.RoleCaseworker))
	wantStatus(t, res, http.StatusOK)
	res, _ = api.get("/api/v1/referrals/"+other.ID.String(), "Authorization", bearer(t, "social", "social-case-system", web.RoleCaseworker))
	wantStatus(t, res, http.StatusOK)

	// Caseworkers do not read the log.
	res, _ = cw.get("/ui/access-log")
	wantStatus(t, res, http.StatusForbidden)
	res, _ = cw.get("/api/v1/access-log")
	wantStatus(t, res, http.StatusForbidden)
	res, _ = api.get("/api/v1/access-log", "Authorization", bearer(t, "social", "social-case-system", web.RoleCaseworker))
	wantStatus(t, res, http.StatusForbidden)

	aud := n.signIn("social", "social-auditor")
	res, body := aud.get("/ui/access-log")
	wantStatus(t, res, http.StatusOK)
	rows := strings.Split(body, "data-access=")[1:]
	if len(rows) != 3 {
		t.Fatalf("the access log shows %d rows, want 3:\n%s", len(rows), trim(body))
	}
	// Newest first: the API's read of the other referral, the case, the
	// caseworker's page.
	for i, want := range [][]string{
		{"social-case-system", other.ID.String(), "API"},
		{"social-case-system", r.CaseID.String(), "всё дело"},
		{"social-caseworker", r.CaseID.String(), `href="/ui/referrals/` + r.ID.String() + `"`, "страница"},
	} {
		wantContains(t, rows[i], want...)
	}

	res, body = aud.get("/ui/access-log?user=social-caseworker")
	wantStatus(t, res, http.StatusOK)
	if got := strings.Count(body, "data-access="); got != 1 {
		t.Fatalf("filtered by user: %d rows, want 1", got)
	}
	res, body = aud.get("/ui/access-log?case=" + other.CaseID.String())
	wantStatus(t, res, http.StatusOK)
	if got := strings.Count(body, "data-access="); got != 1 || !strings.Contains(body, other.ID.String()) {
		t.Fatalf("filtered by case: %d rows", got)
	}
	res, body = aud.get("/ui/access-log?case=not-a-case")
	wantStatus(t, res, http.StatusUnprocessableEntity)
	wantContains(t, body, `value="not-a-case"`, `role="alert"`)

	res, body = aud.get("/api/v1/access-log?case_id=" + r.CaseID.String())
	wantStatus(t, res, http.StatusOK)
	var out struct {
		Access []struct {
			User string `json:"username"`
			Via  string `json:"via"`
			Ref  string `json:"referral_id"`
		} `json:"access"`
	}
	if err := json.Unmarshal([]byte(body), &out); err != nil {
		t.Fatal(err)
	}
	if len(out.Access) != 2 || out.Access[0].Via != "api" || out.Access[0].Ref != "" || out.Access[1].User != "social-caseworker" || out.Access[1].Via != "ui" || out.Access[1].Ref != r.ID.String() {
		t.Fatalf("the API's access log: %s", body)
	}
	// The auditor's own reads are logged too, after the list above.
	res, _ = aud.get("/ui/referrals/" + r.ID.String())
	wantStatus(t, res, http.StatusOK)
	res, body = n.signIn("social", "social-supervisor").get("/ui/access-log?user=social-auditor")
	wantStatus(t, res, http.StatusOK)
	if got := strings.Count(body, "data-access="); got != 1 {
		t.Fatalf("the auditor's own opening: %d rows", got)
	}
}
