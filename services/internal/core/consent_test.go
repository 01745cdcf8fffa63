package core_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/refbus/refbus/schemas"
	"github.com/refbus/refbus/services/internal/core"
	"github.com/refbus/refbus/services/internal/core/app"
	"github.com/refbus/refbus/services/internal/core/nodetest"
)

// A referral needs a consent that is recorded, unrevoked, unexpired, for
// the node it goes to and covering what it shares; anything else is a
// problem that says which, and writes nothing. A consent is for a node the
// directory lists, with categories of the contract, and not already
// expired.
func TestConsentRefusals(t *testing.T) {
	t.Parallel()
	var clk clock
	n := nodetest.New(t)
	n.Start("school", plain(schoolTransfer), nil)
	n.Start("legal_aid", plain(legalHelp), nil)
	n.Start("clinic", plain(healthCheck), func(c *core.Config) { c.Now = clk.now })
	post := func(body string) (int, string) {
		status, res, _ := n.Do("clinic", "POST", "/api/v1/consents", body)
		return status, res
	}
	soon := time.Now().Add(48 * time.Hour).UTC().Format(time.RFC3339)
	status, res := post(`{"given_by":"mother","to_org":"legal_aid","purpose":"legal help","data_categories":["summary"],"expires_at":"` + soon + `"}`)
	if status != 201 {
		t.Fatalf("record consent: %d %s", status, res)
	}
	toLegalAid := nodetest.Decode[app.Consent](t, res)
	status, res = post(`{"given_by":"mother","person_id":"880101300123","to_org":"legal_aid","purpose":"legal help","data_categories":["summary","identity"],"expires_at":"` + soon + `"}`)
	if status != 201 {
		t.Fatalf("record consent for a person: %d %s", status, res)
	}
	forMother := nodetest.Decode[app.Consent](t, res)
	expiring := n.Consent("clinic", "school")
	revoked := n.Consent("clinic", "school")
	if status, res, _ := n.Do("clinic", "POST", "/api/v1/consents/"+revoked.String()+"/revoke", `{"reason":"the mother changed her mind"}`); status != 200 {
		t.Fatalf("revoke: %d %s", status, res)
	}
	clk.advance(25 * time.Hour) // every consent of n.Consent lasts a day
	for _, c := range []struct{ name, body, want string }{
		{"none", `{"to_org":"legal_aid","service":"legal_help","note":"n"}`, "consent_id"},
		{"unknown", `{"to_org":"legal_aid","service":"legal_help","note":"n","consent_id":"0193a000-0000-7000-a000-000000000001"}`, "not recorded"},
		{"other node", fmt.Sprintf(`{"to_org":"school","service":"school_transfer","note":"n","consent_id":%q}`, toLegalAid.ID), "allows sharing with legal_aid, not with school"},
		{"category", fmt.Sprintf(`{"to_org":"legal_aid","service":"legal_help","note":"n","person_id":"880101300123","consent_id":%q}`, toLegalAid.ID), `"identity"`},
		{"other person", fmt.Sprintf(`{"to_org":"legal_aid","service":"legal_help","note":"n","person_id":"950715401237","consent_id":%q}`, forMother.ID), "another person"},
		{"expired", fmt.Sprintf(`{"to_org":"school","service":"school_transfer","note":"n","consent_id":%q}`, expiring), "expired"},
		{"revoked", fmt.Sprintf(`{"to_org":"school","service":"school_transfer","note":"n","consent_id":%q}`, revoked), "revoked"},
	} {
		status, body, h := n.Do("clinic", "POST", "/api/v1/referrals", c.body)
		t.Run(c.name, func(t *testing.T) { checkProblem(t, status, body, h, 422, c.want) })
	}
	for _, c := range []struct{ name, body, want string }{
		{"expired already", `{"given_by":"mother","to_org":"legal_aid","purpose":"p","data_categories":["summary"],"expires_at":"2020-01-01T00:00:00Z"}`, "not in the future"},
		{"node not listed", `{"given_by":"mother","to_org":"police","purpose":"p","data_categories":["summary"],"expires_at":"` + soon + `"}`, "legal_aid"},
		{"itself", `{"given_by":"mother","to_org":"clinic","purpose":"p","data_categories":["summary"],"expires_at":"` + soon + `"}`, "an organization of this node"},
		{"unknown category", `{"given_by":"mother","to_org":"legal_aid","purpose":"p","data_categories":["horoscope"],"expires_at":"` + soon + `"}`, "data_categories"},
	} {
		status, body, h := n.Do("clinic", "POST", "/api/v1/consents", c.body)
		t.Run("consent "+c.name, func(t *testing.T) { checkProblem(t, status, body, h, 422, c.want) })
	}
	if sent, err := n.App("clinic").Sent(context.Background(), "", 10); err != nil || len(sent) != 0 {
		t.Fatalf("refused referrals were written: %v %v", sent, err)
	}
	// Every category of the contract may be consented to.
	cats := `"` + strings.Join(schemas.Categories(), `","`) + `"`
	status, res = post(`{"given_by":"mother","to_org":"legal_aid","purpose":"p","data_categories":[` + cats + `],"expires_at":"` + time.Now().Add(72*time.Hour).UTC().Format(time.RFC3339) + `"}`)
	if status != 201 {
		t.Fatalf("a consent to every category: %d %s", status, res)
	}
	// The one good consent still works.
	status, res, _ = n.Do("clinic", "POST", "/api/v1/referrals", fmt.Sprintf(`{"to_org":"legal_aid","service":"legal_help","note":"n","consent_id":%q}`, toLegalAid.ID))
	if status != 201 {
		t.Fatalf("referral under a valid consent: %d %s", status, res)
	}
}

// Revoking a consent cancels the open referral made under it and redacts
// the shared data at the receiver, whose moves stop; a referral already
// ended is redacted too; the timeline stays.
func TestConsentRevocationRedactsAtRecipient(t *testing.T) {
	t.Parallel()
	n := nodetest.New(t)
	n.Start("clinic", plain(healthCheck), nil)
	n.Start("legal_aid", plain(legalHelp), nil)
	const secret = "the mother's phone is 8 701 555 0101"
	consent := n.Consent("clinic", "legal_aid")
	refer := func() app.Referral {
		status, res, _ := n.Do("clinic", "POST", "/api/v1/referrals",
			fmt.Sprintf(`{"to_org":"legal_aid","service":"legal_help","note":%q,"person_id":"880101300123","consent_id":%q}`, secret, consent))
		if status != 201 {
			t.Fatalf("refer: %d %s", status, res)
		}
		return nodetest.Decode[app.Referral](t, res)
	}
	open, done := refer(), refer()
	n.Both(open, "received")
	n.Both(done, "received")
	n.Move("legal_aid", open.ID, "accept", ``)
	n.Move("legal_aid", done.ID, "accept", ``)
	n.Move("legal_aid", done.ID, "start", ``)
	n.Move("legal_aid", done.ID, "complete", `{"outcome":"advice given"}`)
	n.Both(open, "accepted")
	n.Both(done, "completed")
	if r, _ := n.Referral("legal_aid", open.ID); r.Note != secret {
		t.Fatalf("legal_aid did not get the note before the revocation: %+v", r)
	}

	status, res, _ := n.Do("clinic", "POST", "/api/v1/consents/"+consent.String()+"/revoke", `{"reason":"the family withdrew"}`)
	if status != 200 || nodetest.Decode[app.Consent](t, res).RevokedAt == nil {
		t.Fatalf("revoke: %d %s", status, res)
	}
	status, body, h := n.Do("clinic", "POST", "/api/v1/consents/"+consent.String()+"/revoke", `{"reason":"again"}`)
	checkProblem(t, status, body, h, 409, "already revoked")
	status, body, h = n.Do("clinic", "POST", "/api/v1/consents/"+uuid.NewString()+"/revoke", `{"reason":"x"}`)
	checkProblem(t, status, body, h, 404, "no consent")
	status, body, _ = n.Do("clinic", "GET", "/api/v1/consents", "")
	list := nodetest.Decode[struct{ Consents []app.Consent }](t, body)
	if status != 200 || len(list.Consents) != 1 || list.Consents[0].RevokedAt == nil || list.Consents[0].RevokeReason != "the family withdrew" {
		t.Fatalf("consents: %d %s", status, body)
	}
	if strings.Contains(n.StoreText("legal_aid"), "mother (legal representative)") {
		t.Error("who gave the consent left the clinic")
	}

	n.Both(open, "cancelled")
	for _, id := range []uuid.UUID{open.ID, done.ID} {
		nodetest.Eventually(t, 30*time.Second, func() error {
			r, err := n.Referral("legal_aid", id)
			if err != nil || !r.Redacted || !r.ConsentRevoked {
				return fmt.Errorf("legal_aid's referral %s is not redacted: %+v %v", id, r, err)
			}
			return nil
		})
	}
	for _, path := range []string{"/api/v1/inbox", "/api/v1/referrals/" + open.ID.String(), "/api/v1/cases/" + open.CaseID.String()} {
		if _, body, _ := n.Do("legal_aid", "GET", path, ""); strings.Contains(body, secret) || strings.Contains(body, "person_key") {
			t.Errorf("legal_aid still shows the shared data at %s: %s", path, body)
		}
	}
	if strings.Contains(n.StoreText("legal_aid"), secret) {
		t.Error("the note is still in legal_aid's store")
	}
	if r, _ := n.Referral("legal_aid", done.ID); r.Status != "completed" || r.Outcome != "advice given" {
		t.Errorf("the ended referral's record changed beyond the redaction: %+v", r)
	}
	// The timeline stays, step for step.
	wantSteps(t, n, "legal_aid", open, "request", "receive", "accept", "cancel")
	wantSteps(t, n, "legal_aid", done, "request", "receive", "accept", "start", "complete")
	status, body, h = n.Do("legal_aid", "POST", "/api/v1/referrals/"+done.ID.String()+"/complete", `{"outcome":"x"}`)
	checkProblem(t, status, body, h, 409, "revoked")
	// The sender keeps its own record.
	if r, _ := n.Referral("clinic", open.ID); r.Note != secret || !r.ConsentRevoked || r.Redacted {
		t.Errorf("the clinic's own record: %+v", r)
	}
}

// The receiver checks the consent a referral carries, too: one under an
// expired consent, or sharing more than its consent covers, is refused at
// the bus with the reason.
func TestConsentCheckedByReceiver(t *testing.T) {
	t.Parallel()
	n := nodetest.New(t)
	n.Start("legal_aid", plain(legalHelp), nil)
	expired := map[string]any{"id": uuid.NewString(), "purpose": "help", "data_categories": []string{"summary"},
		"expires_at": time.Now().Add(-time.Hour).UTC().Format(time.RFC3339)}
	narrow := map[string]any{"id": uuid.NewString(), "purpose": "help", "data_categories": []string{"summary"},
		"expires_at": time.Now().Add(time.Hour).UTC().Format(time.RFC3339)}
	js := n.JetStream()
	for _, data := range []map[string]any{
		{"to_agency": "legal_aid", "service": "legal_help", "note": "n", "consent": expired},
		{"to_agency": "legal_aid", "service": "legal_help", "note": "n", "consent": narrow, "person_key": strings.Repeat("ab", 32)},
	} {
		publish(t, js, "clinic", "legal_aid", requestedEvent(t, n, "clinic", data))
	}
	nodetest.Eventually(t, 30*time.Second, func() error {
		reasons, err := rejectionReasons(n, "legal_aid")
		if err != nil {
			return err
		}
		all := strings.Join(reasons, " | ")
		if len(reasons) != 2 || !strings.Contains(all, "expired") || !strings.Contains(all, "identity data, which consent") {
			return fmt.Errorf("legal_aid's rejections: %s", all)
		}
		return nil
	})
	if in, _ := n.App("legal_aid").Inbox(context.Background(), "", 10); len(in) != 0 {
		t.Fatalf("legal_aid took referrals without valid consent: %+v", in)
	}
}

// A consent revoked by another replica of the node, which this one's cache
// of consents cannot know of, still stops the next referral, with the
// reason: the referral's transaction holds the consent, and its failure
// reads the consent again.
func TestConsentRevokedElsewhereRefused(t *testing.T) {
	t.Parallel()
	n := nodetest.New(t)
	n.Start("clinic", plain(healthCheck), nil)
	n.Start("legal_aid", plain(legalHelp), nil)
	ctx := context.Background()
	c := n.Consent("clinic", "legal_aid")
	body := fmt.Sprintf(`{"to_org":"legal_aid","service":"legal_help","note":"n","consent_id":%q}`, c)
	if status, res, _ := n.Do("clinic", "POST", "/api/v1/referrals", body); status != 201 {
		t.Fatalf("first referral: %d %s", status, res)
	}
	conn, err := pgx.Connect(ctx, n.DB("clinic"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, "UPDATE core.consent SET revoked_at = now() WHERE id = $1", c); err != nil {
		t.Fatal(err)
	}
	status, res, h := n.Do("clinic", "POST", "/api/v1/referrals", body)
	checkProblem(t, status, res, h, 422, "was revoked on")
	if sent, err := n.App("clinic").Sent(ctx, "", 10); err != nil || len(sent) != 1 {
		t.Fatalf("sent after the refusal: %d referrals, %v; want the first only", len(sent), err)
	}
}
