package agency_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/refbus/refbus/pkg/bus"
	"github.com/refbus/refbus/pkg/event"
	"github.com/refbus/refbus/services/internal/agency"
)

// A referral needs a consent that is recorded, unrevoked, unexpired, for
// the agency it goes to and covering what it shares; anything else is a
// problem that says which, and writes nothing.
func TestConsentRefusals(t *testing.T) {
	t.Parallel()
	var clk clock
	n := newNetwork(t, "education", "social", "ngo")
	n.urls["health"] = newDB(t)
	n.start("health", func(c *agency.Config) { c.Now = clk.now })
	post := func(body string) (int, string) {
		status, res, _ := n.do("health", "POST", "/api/v1/consents", body)
		return status, res
	}
	soon := time.Now().Add(48 * time.Hour).UTC().Format(time.RFC3339)
	status, res := post(`{"given_by":"mother","to_agency":"ngo","purpose":"shelter","data_categories":["summary"],"expires_at":"` + soon + `"}`)
	if status != 201 {
		t.Fatalf("record consent: %d %s", status, res)
	}
	toNGO := decode[agency.Consent](t, res)
	status, res = post(`{"given_by":"mother","person_id":"880101300123","to_agency":"ngo","purpose":"shelter","data_categories":["summary","identity"],"expires_at":"` + soon + `"}`)
	if status != 201 {
		t.Fatalf("record consent for a person: %d %s", status, res)
	}
	forMother := decode[agency.Consent](t, res)
	expiring := n.consent("health", "education")
	revoked := n.consent("health", "social")
	if status, res, _ := n.do("health", "POST", "/api/v1/consents/"+revoked.String()+"/revoke", `{"reason":"the mother changed her mind"}`); status != 200 {
		t.Fatalf("revoke: %d %s", status, res)
	}
	clk.advance(25 * time.Hour) // every consent of n.consent lasts a day
	for _, c := range []struct{ name, body, want string }{
		{"none", `{"to_agency":"ngo","service":"legal_help","note":"n"}`, "consent_id"},
		{"unknown", `{"to_agency":"ngo","service":"legal_help","note":"n","consent_id":"0193a000-0000-7000-a000-000000000001"}`, "not recorded"},
		{"other agency", fmt.Sprintf(`{"to_agency":"education","service":"school_transfer","note":"n","consent_id":%q}`, toNGO.ID), "allows sharing with ngo, not with education"},
		{"category", fmt.Sprintf(`{"to_agency":"ngo","service":"legal_help","note":"n","person_id":"880101300123","consent_id":%q}`, toNGO.ID), `"identity"`},
		{"other person", fmt.Sprintf(`{"to_agency":"ngo","service":"legal_help","note":"n","person_id":"950715401237","consent_id":%q}`, forMother.ID), "another person"},
		{"expired", fmt.Sprintf(`{"to_agency":"education","service":"school_transfer","note":"n","consent_id":%q}`, expiring), "expired"},
		{"revoked", fmt.Sprintf(`{"to_agency":"social","service":"family_support","note":"n","consent_id":%q}`, revoked), "revoked"},
	} {
		status, body, h := n.do("health", "POST", "/api/v1/referrals", c.body)
		t.Run(c.name, func(t *testing.T) { checkProblem(t, status, body, h, 422, c.want) })
	}
	status, res = post(`{"given_by":"mother","to_agency":"ngo","purpose":"shelter","data_categories":["summary"],"expires_at":"2020-01-01T00:00:00Z"}`)
	if status != 422 || !strings.Contains(res, "not in the future") {
		t.Errorf("a consent expired already: %d %s", status, res)
	}
	if sent, err := n.svc("health").svc.Sent(context.Background(), 10); err != nil || len(sent) != 0 {
		t.Fatalf("refused referrals were written: %v %v", sent, err)
	}
	// The one good consent still works.
	status, res, _ = n.do("health", "POST", "/api/v1/referrals", fmt.Sprintf(`{"to_agency":"ngo","service":"legal_help","note":"n","consent_id":%q}`, toNGO.ID))
	if status != 201 {
		t.Fatalf("referral under a valid consent: %d %s", status, res)
	}
}

// Revoking a consent cancels the open referral made under it and redacts
// the shared data at the receiver, whose moves stop; a referral already
// ended is redacted too; the timeline stays.
func TestConsentRevocationRedactsAtRecipient(t *testing.T) {
	t.Parallel()
	n := newNetwork(t, "health", "ngo")
	const secret = "the mother's phone is 8 701 555 0101"
	consent := n.consent("health", "ngo")
	refer := func() agency.Referral {
		status, res, _ := n.do("health", "POST", "/api/v1/referrals",
			fmt.Sprintf(`{"to_agency":"ngo","service":"legal_help","note":%q,"person_id":"880101300123","consent_id":%q}`, secret, consent))
		if status != 201 {
			t.Fatalf("refer: %d %s", status, res)
		}
		return decode[agency.Referral](t, res)
	}
	open, done := refer(), refer()
	n.both(open, "received")
	n.both(done, "received")
	n.move("ngo", open.ID, "accept", ``)
	n.move("ngo", done.ID, "accept", ``)
	n.move("ngo", done.ID, "start", ``)
	n.move("ngo", done.ID, "complete", `{"outcome":"sheltered"}`)
	n.both(open, "accepted")
	n.both(done, "completed")
	if r, _ := n.referralStatus("ngo", open.ID.String()); r.Note != secret {
		t.Fatalf("ngo did not get the note before the revocation: %+v", r)
	}

	status, res, _ := n.do("health", "POST", "/api/v1/consents/"+consent.String()+"/revoke", `{"reason":"the family withdrew"}`)
	if status != 200 || decode[agency.Consent](t, res).RevokedAt == nil {
		t.Fatalf("revoke: %d %s", status, res)
	}
	status, body, h := n.do("health", "POST", "/api/v1/consents/"+consent.String()+"/revoke", `{"reason":"again"}`)
	checkProblem(t, status, body, h, 409, "already revoked")
	status, body, h = n.do("health", "POST", "/api/v1/consents/"+uuid.NewString()+"/revoke", `{"reason":"x"}`)
	checkProblem(t, status, body, h, 404, "no consent")
	status, body, _ = n.do("health", "GET", "/api/v1/consents", "")
	list := decode[struct{ Consents []agency.Consent }](t, body)
	if status != 200 || len(list.Consents) != 1 || list.Consents[0].RevokedAt == nil || list.Consents[0].RevokeReason != "the family withdrew" {
		t.Fatalf("consents: %d %s", status, body)
	}
	if strings.Contains(n.storeText("ngo"), "mother (legal representative)") {
		t.Error("who gave the consent left health")
	}

	n.both(open, "cancelled")
	for _, id := range []string{open.ID.String(), done.ID.String()} {
		eventually(t, 10*time.Second, func() error {
			r, err := n.referralStatus("ngo", id)
			if err != nil || !r.Redacted || !r.ConsentRevoked {
				return fmt.Errorf("ngo's referral %s is not redacted: %+v %v", id, r, err)
			}
			return nil
		})
	}
	for _, path := range []string{"/api/v1/inbox", "/api/v1/referrals/" + open.ID.String(), "/api/v1/cases/" + open.CaseID.String()} {
		if _, body, _ := n.do("ngo", "GET", path, ""); strings.Contains(body, secret) || strings.Contains(body, "person_key") {
			t.Errorf("ngo still shows the shared data at %s: %s", path, body)
		}
	}
	if r, _ := n.referralStatus("ngo", done.ID.String()); r.Status != "completed" || r.Outcome != "sheltered" {
		t.Errorf("the ended referral's record changed beyond the redaction: %+v", r)
	}
	c := n.caseOf("ngo", open.CaseID)
	if len(c.Timeline) < 8 {
		t.Errorf("ngo's timeline lost steps: %+v", c.Timeline)
	}
	status, body, h = n.do("ngo", "POST", "/api/v1/referrals/"+done.ID.String()+"/complete", `{"outcome":"x"}`)
	checkProblem(t, status, body, h, 409, "revoked")
	// The sender keeps its own record.
	if r, _ := n.referralStatus("health", open.ID.String()); r.Note != secret || !r.ConsentRevoked || r.Redacted {
		t.Errorf("health's own record: %+v", r)
	}
}

// The receiver checks the consent a referral carries, too: one without a
// consent, or under an expired one, is refused at the bus with the reason.
func TestConsentCheckedByReceiver(t *testing.T) {
	t.Parallel()
	n := newNetwork(t, "ngo")
	ctx := context.Background()
	expired := map[string]any{"id": uuid.NewString(), "purpose": "help", "data_categories": []string{"summary"},
		"expires_at": time.Now().Add(-time.Hour).UTC().Format(time.RFC3339)}
	narrow := map[string]any{"id": uuid.NewString(), "purpose": "help", "data_categories": []string{"summary"},
		"expires_at": time.Now().Add(time.Hour).UTC().Format(time.RFC3339)}
	for _, data := range []map[string]any{
		{"to_agency": "ngo", "service": "legal_help", "note": "n", "consent": expired},
		{"to_agency": "ngo", "service": "legal_help", "note": "n", "consent": narrow, "person_key": strings.Repeat("ab", 32)},
	} {
		msg, err := event.NewMsg(bus.Subject("health", "ngo", requested), n.requestedEvent(t, "health", "ngo", data))
		if err != nil {
			t.Fatal(err)
		}
		if _, err := n.jetstream().PublishMsg(ctx, msg); err != nil {
			t.Fatal(err)
		}
	}
	eventually(t, 10*time.Second, func() error {
		rej, err := n.svc("ngo").svc.Rejections(ctx, 10)
		if err != nil {
			return err
		}
		var reasons []string
		for _, r := range rej {
			reasons = append(reasons, r.Reason)
		}
		all := strings.Join(reasons, " | ")
		if len(rej) != 2 || !strings.Contains(all, "expired") || !strings.Contains(all, "identity data, which consent") {
			return fmt.Errorf("ngo's rejections: %s", all)
		}
		return nil
	})
	if in, _ := n.svc("ngo").svc.Inbox(ctx, 10); len(in) != 0 {
		t.Fatalf("ngo took referrals without valid consent: %+v", in)
	}
}

// A consent revoked by another replica of the service, which this one's
// cache of consents cannot know of, still stops the next referral, with
// the reason: the referral's transaction holds the consent, and its
// failure reads the consent again.
func TestConsentRevokedElsewhereRefused(t *testing.T) {
	t.Parallel()
	n := newNetwork(t, "health", "ngo")
	ctx := context.Background()
	c := n.consent("health", "ngo")
	body := fmt.Sprintf(`{"to_agency":"ngo","service":"legal_help","note":"n","consent_id":%q}`, c)
	if status, res, _ := n.do("health", "POST", "/api/v1/referrals", body); status != 201 {
		t.Fatalf("first referral: %d %s", status, res)
	}
	conn, err := pgx.Connect(ctx, n.urls["health"])
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, "UPDATE consent SET revoked_at = now() WHERE id = $1", c); err != nil {
		t.Fatal(err)
	}
	status, res, h := n.do("health", "POST", "/api/v1/referrals", body)
	checkProblem(t, status, res, h, 422, "was revoked on")
	if sent, err := n.svc("health").svc.Sent(ctx, 10); err != nil || len(sent) != 1 {
		t.Fatalf("sent after the refusal: %d referrals, %v; want the first only", len(sent), err)
	}
}
