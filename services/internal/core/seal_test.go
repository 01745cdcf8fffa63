package core_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	ce "github.com/cloudevents/sdk-go/v2/event"
	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/refbus/refbus/pkg/bus"
	"github.com/refbus/refbus/pkg/event"
	"github.com/refbus/refbus/schemas"
	"github.com/refbus/refbus/services/internal/core/nodetest"
)

// A referral's data key, derived towards one node, is derived again
// there only: not at another node, not for another referral, not from an
// altered encapsulation; and no key is derived towards a node the
// directory does not list.
func TestDataKeyOnlyForItsRecipient(t *testing.T) {
	t.Parallel()
	n := nodetest.New(t)
	n.Start("shelter", plain(legalHelp), nil)
	n.Start("social", plain(familySupport), nil)
	n.Start("school", plain(schoolTransfer), nil)
	ctx := context.Background()
	id := uuid.New()
	key, wrapped, err := n.App("shelter").NewDataKey(ctx, "social", id)
	if err != nil {
		t.Fatal(err)
	}
	if got, err := n.App("social").DataKeyOf(ctx, id, wrapped); err != nil || !bytes.Equal(got, key) {
		t.Fatalf("social derives %x, %v; want %x", got, err, key)
	}
	if other, _, err := n.App("shelter").NewDataKey(ctx, "social", uuid.New()); err != nil || bytes.Equal(other, key) {
		t.Fatalf("another referral's key: %x, %v", other, err)
	}
	if _, err := n.App("school").DataKeyOf(ctx, id, wrapped); err == nil {
		t.Error("the school derived a key meant for social")
	}
	if got, _ := n.App("social").DataKeyOf(ctx, uuid.New(), wrapped); bytes.Equal(got, key) {
		t.Error("social derived the key for another referral")
	}
	altered := append([]byte(nil), wrapped...)
	altered[len(altered)-1] ^= 1
	if got, _ := n.App("social").DataKeyOf(ctx, id, altered); bytes.Equal(got, key) {
		t.Error("an altered encapsulation gave the key")
	}
	if _, _, err := n.App("shelter").NewDataKey(ctx, "police", id); err == nil || !strings.Contains(err.Error(), "not in the directory") {
		t.Errorf("a key towards a node the directory does not list: %v", err)
	}
	// The node's keys outlive a restart.
	n.Restart("social", nil)
	if got, err := n.App("social").DataKeyOf(ctx, id, wrapped); err != nil || !bytes.Equal(got, key) {
		t.Fatalf("after a restart social derives %x, %v", got, err)
	}
}

// What a referral says about the family (its note, the person key, the
// consent's purpose, the reasons and outcome of its moves) travels
// sealed: no event on the stream holds it in clear, while the receiver
// reads it, and the readable part (ids, service, organizations, reason
// code) stays readable without any key.
func TestReferralTravelsSealed(t *testing.T) {
	t.Parallel()
	const (
		note    = "Bruises on both forearms; the mother is afraid to go home"
		purpose = "help for the family" // nodetest's consent
		reason  = "The family asked to wait until the court date"
		outcome = "Protection order granted on the fourteenth"
	)
	n := nodetest.New(t)
	n.Start("clinic", plain(healthCheck), nil)
	n.Start("legal_aid", plain(legalHelp), nil)
	consent := n.Consented("clinic", fmt.Sprintf(`{"to_org":"legal_aid","service":"legal_help","note":%q,"person_id":"880101300123"}`, note))
	status, body, _ := n.Do("clinic", "POST", "/api/v1/referrals", consent)
	if status != 201 {
		t.Fatalf("refer: %d %s", status, body)
	}
	r := nodetest.Decode[struct {
		ID     uuid.UUID `json:"id"`
		CaseID uuid.UUID `json:"case_id"`
	}](t, body)
	nodetest.Eventually(t, 30*time.Second, n.WantStatus("legal_aid", r.ID, "received"))
	got, err := n.Referral("legal_aid", r.ID)
	if err != nil || got.Note != note {
		t.Fatalf("legal_aid reads the note %q, %v", got.Note, err)
	}
	n.Move("legal_aid", r.ID, "accept", "")
	n.Move("legal_aid", r.ID, "start", "")
	n.Move("legal_aid", r.ID, "hold", fmt.Sprintf(`{"reason":%q}`, reason))
	n.Move("legal_aid", r.ID, "resume", "")
	n.Move("legal_aid", r.ID, "complete", fmt.Sprintf(`{"outcome":%q}`, outcome))
	nodetest.Eventually(t, 30*time.Second, n.WantStatus("clinic", r.ID, "completed"))
	if got, _ := n.Referral("clinic", r.ID); got.Outcome != outcome {
		t.Fatalf("the clinic reads the outcome %q", got.Outcome)
	}

	for _, secret := range []string{note, purpose, reason, outcome, "person_key", `"note"`} {
		if n.EventsTo("", secret) {
			t.Errorf("%q is in clear text on the stream", secret)
		}
	}
	evs := n.StreamEvents(r.ID.String())
	if len(evs) != 6 {
		t.Fatalf("%d events of the referral on the stream, want 6", len(evs))
	}
	reg := registry(t)
	for _, e := range evs {
		if !reg.IsSealed(e) {
			t.Errorf("%s is not sealed: %s", e.Type(), e.Data())
		}
		if err := reg.Validate(e); err != nil {
			t.Errorf("the readable part of %s breaks its sealed form: %v", e.Type(), err)
		}
	}
	var readable schemas.Requested
	if err := event.Data(evs[0], &readable); err != nil || readable.ToAgency != "legal_aid" || readable.Service != "legal_help" || readable.ToOrg != "legal_aid" {
		t.Errorf("the request's readable part: %+v, %v", readable, err)
	}
	if w, err := reg.WrappedKey(evs[0]); err != nil || w == nil {
		t.Errorf("the request carries no wrapped key: %v", err)
	}
	if w, err := reg.WrappedKey(evs[1]); err != nil || w != nil {
		t.Errorf("a move carries a wrapped key: %x, %v", w, err)
	}
}

// A request whose sealed part cannot be opened by its receiver (its key
// wrapped to another node, its box altered, or sent in clear), or opens
// to data that breaks the schema, is stored as rejected with the reason,
// and nothing of it is recorded.
func TestUnopenableRequestRejected(t *testing.T) {
	t.Parallel()
	n := nodetest.New(t)
	n.Start("clinic", plain(healthCheck), nil)
	n.Start("legal_aid", plain(legalHelp), nil)
	n.Start("social", plain(familySupport), nil)
	ctx := context.Background()
	reg := registry(t)
	js := n.JetStream()
	request := func(data map[string]any) (*ce.Event, uuid.UUID) {
		id := uuid.Must(uuid.NewV7())
		base := map[string]any{"to_agency": "legal_aid", "from_org": "clinic", "service": "legal_help"}
		for k, v := range data {
			base[k] = v
		}
		b, err := json.Marshal(base)
		if err != nil {
			t.Fatal(err)
		}
		e, err := reg.Build(bus.Source("clinic"), schemas.TypeRequested, id.String(), nil)
		if err != nil {
			t.Fatal(err)
		}
		e.DataEncoded = b
		e.SetExtension(event.ExtCaseID, uuid.NewString())
		event.SetSequence(e, 1)
		return e, id
	}
	consent := map[string]any{"id": uuid.NewString(), "purpose": "p", "data_categories": []string{"summary"}, "expires_at": time.Now().Add(time.Hour).UTC().Format(time.RFC3339)}
	good := map[string]any{"note": "n", "consent": consent}
	sealTo := func(e *ce.Event, id uuid.UUID, to string) {
		key, wrapped, err := n.App("clinic").NewDataKey(ctx, to, id)
		if err != nil {
			t.Fatal(err)
		}
		if err := reg.Seal(e, key, wrapped); err != nil {
			t.Fatal(err)
		}
	}
	var ids []uuid.UUID
	// Sealed to social, sent to legal_aid.
	e, id := request(good)
	sealTo(e, id, "social")
	publish(t, js, "clinic", "legal_aid", e)
	ids = append(ids, id)
	// In clear.
	e, id = request(good)
	publish(t, js, "clinic", "legal_aid", e)
	ids = append(ids, id)
	// A box altered on the way.
	e, id = request(good)
	sealTo(e, id, "legal_aid")
	e.DataEncoded = []byte(strings.Replace(string(e.Data()), `"box":"`, `"box":"AAAA`, 1))
	publish(t, js, "clinic", "legal_aid", e)
	ids = append(ids, id)
	// A sealed part that opens to a note that is not text.
	e, id = request(map[string]any{"note": 5, "consent": consent})
	sealTo(e, id, "legal_aid")
	publish(t, js, "clinic", "legal_aid", e)
	ids = append(ids, id)

	nodetest.Eventually(t, 30*time.Second, func() error {
		reasons, err := rejectionReasons(n, "legal_aid")
		if err != nil {
			return err
		}
		all := strings.Join(reasons, " | ")
		if len(reasons) != 4 {
			return fmt.Errorf("%d rejections: %s", len(reasons), all)
		}
		for _, want := range []string{"wrapped for another node", "came in clear", "sealed part does not open", "breaks the schema"} {
			if !strings.Contains(all, want) {
				return fmt.Errorf("no rejection says %q: %s", want, all)
			}
		}
		return nil
	})
	for _, id := range ids {
		if _, err := n.Referral("legal_aid", id); err == nil {
			t.Errorf("referral %s was recorded", id)
		}
	}
}

// dataKey is the data key node name holds for referral id.
func dataKey(t *testing.T, n *nodetest.Network, name string, id uuid.UUID) []byte {
	t.Helper()
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, n.DB(name))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	var key []byte
	if err := conn.QueryRow(ctx, "SELECT data_key FROM core.referral WHERE id = $1", id).Scan(&key); err != nil {
		t.Fatal(err)
	}
	return key
}
