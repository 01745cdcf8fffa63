package agency_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/nats-io/nkeys"

	"github.com/refbus/refbus/services/internal/agency"
)

// freeBeds reads, from agency a's directory, the free beds of a service of
// the ngo.
func (n *network) freeBeds(a, service string) (int, error) {
	status, body, _ := n.do(a, "GET", "/api/v1/directory", "")
	if status != 200 {
		return 0, fmt.Errorf("directory: %d %s", status, body)
	}
	d := decode[struct {
		Agencies []agency.Listing `json:"agencies"`
	}](n.t, body)
	for _, l := range d.Agencies {
		for _, o := range l.Services {
			if l.Agency == "ngo" && o.Name == service && o.FreeBeds != nil {
				return *o.FreeBeds, nil
			}
		}
	}
	return 0, fmt.Errorf("the directory has no beds of the ngo's %s: %s", service, body)
}

func (n *network) wantFreeBeds(a, service string, want int) {
	n.t.Helper()
	eventually(n.t, 10*time.Second, func() error {
		got, err := n.freeBeds(a, service)
		if err == nil && got != want {
			err = fmt.Errorf("%s sees %d free beds in %s, want %d", a, got, service, want)
		}
		return err
	})
}

// oneBedShelters is an ngo with two shelters of one bed each.
func oneBedShelters(c *agency.Config) {
	c.Services = []agency.Offer{
		{Name: "crisis_shelter", Title: "Zhan-Saya", Eligibility: "women and children", Languages: []string{"kk", "ru"}, Area: "Almaty", Beds: 1},
		{Name: "crisis_shelter_nur", Title: "Nur", Eligibility: "women and children", Languages: []string{"ru"}, Area: "Almaty region", Beds: 1},
		{Name: "legal_help", Title: "Legal consultation", Eligibility: "families", Languages: []string{"kk"}, Area: "Almaty"},
	}
}

// Every agency lists its services in the directory; a referral for a
// service the target does not offer is refused; a shelter's free beds go
// down with each placement and up when a stay ends; a referral to a full
// shelter is declined with no_capacity, and the sender sends the family to
// another shelter.
func TestDirectoryAndShelterCapacity(t *testing.T) {
	t.Parallel()
	n := newNetwork(t, "health", "social")
	n.urls["ngo"] = newDB(t)
	n.start("ngo", oneBedShelters)

	status, body, _ := n.do("health", "GET", "/api/v1/directory", "")
	d := decode[struct {
		Agencies []agency.Listing `json:"agencies"`
	}](t, body)
	if status != 200 || len(d.Agencies) != 3 || d.Agencies[0].Agency != "health" || len(d.Agencies[1].Services) != 3 {
		t.Fatalf("directory: %d %s", status, body)
	}
	n.wantFreeBeds("health", "crisis_shelter", 1)

	status, body, h := n.do("health", "POST", "/api/v1/referrals", n.consented("health", `{"to_agency":"ngo","service":"brain_surgery","note":"n"}`))
	checkProblem(t, status, body, h, 422, `ngo does not offer the service "brain_surgery"`, "crisis_shelter_nur")
	if sent, _ := n.svc("health").svc.Sent(t.Context(), 10); len(sent) != 0 {
		t.Fatalf("a refused referral was written: %+v", sent)
	}

	a := n.refer("social", "ngo", "crisis_shelter", "")
	n.both(a, "received")
	for _, c := range []struct{ body, want string }{
		{``, "work.placement"},
		{fmt.Sprintf(`{"work":{"placement":{"bed":"1","address":"x","ends_on":%q}}}`, time.Now().AddDate(0, 7, 0).Format(time.DateOnly)), "at most 6 months"},
		{`{"work":{"placement":{"bed":"1","address":"x","ends_on":"2020-01-01"}}}`, "after starts_on"},
		{`{"work":{"screening":{"kind":"x","result":"normal"}}}`, "only health records"},
		{fmt.Sprintf(`{"work":{"placement":{"bed":"1","ends_on":%q}}}`, time.Now().AddDate(0, 1, 0).Format(time.DateOnly)), "address"},
	} {
		status, body, h := n.do("ngo", "POST", "/api/v1/referrals/"+a.ID.String()+"/accept", c.body)
		checkProblem(t, status, body, h, 422, c.want)
	}
	n.wantFreeBeds("health", "crisis_shelter", 1)
	n.move("ngo", a.ID, "accept", placement("1"))
	n.both(a, "accepted")
	n.wantFreeBeds("health", "crisis_shelter", 0)

	// The shelter is full: the next family is declined at once.
	b := n.refer("social", "ngo", "crisis_shelter", "")
	n.both(b, "declined")
	if got, _ := n.referralStatus("social", b.ID.String()); got.ReasonCode != "no_capacity" {
		t.Fatalf("social sees the decline as %+v", got)
	}
	// The sender sends the family to the other shelter, in the same case.
	b2 := n.refer("social", "ngo", "crisis_shelter_nur", b.CaseID.String())
	n.both(b2, "received")
	n.move("ngo", b2.ID, "accept", placement("N-1"))
	n.wantFreeBeds("social", "crisis_shelter_nur", 0)

	// Stays end: the shelter completes one, the sender cancels the other.
	n.move("ngo", a.ID, "start", ``)
	n.move("ngo", a.ID, "complete", `{"outcome":"the family moved to a rented flat"}`)
	n.wantFreeBeds("health", "crisis_shelter", 1)
	n.move("social", b2.ID, "cancel", `{"reason":"the family went to relatives"}`)
	n.both(b2, "cancelled")
	n.wantFreeBeds("health", "crisis_shelter_nur", 1)
	// A freed bed takes the next family.
	c := n.refer("social", "ngo", "crisis_shelter", "")
	n.both(c, "received")
	n.move("ngo", c.ID, "accept", placement("1"))
	n.wantFreeBeds("health", "crisis_shelter", 0)
}

// Work records are checked before anything is written: each agency records
// only its own kind, a learning plan needs its assessment and a review
// after its start, a refused benefit has no amount.
func TestWorkRefusals(t *testing.T) {
	t.Parallel()
	n := newNetwork(t, "health", "education", "social")
	r := n.refer("health", "education", "early_intervention_assessment", "")
	n.both(r, "received")
	n.move("education", r.ID, "accept", ``)
	n.move("education", r.ID, "start", ``)
	for _, c := range []struct {
		agency, move, body string
		status             int
		want               string
	}{
		{"education", "complete", `{"outcome":"x","work":{"learning_plan":{"programme":"p","goals":"g","starts_on":"2026-12-01","review_on":"2027-03-01"}}}`, 422, "from an assessment"},
		{"education", "complete", `{"outcome":"x","work":{"assessment":{"conclusion":"c","needs_support":true},"learning_plan":{"programme":"p","goals":"g","starts_on":"2026-12-01","review_on":"2026-11-01"}}}`, 422, "after starts_on"},
		{"education", "complete", `{"outcome":"x","work":{"benefit_decision":{"benefit":"b","decision":"granted"}}}`, 422, "only social records"},
		{"education", "hold", `{"reason":"x","work":{"assessment":{"conclusion":"c","needs_support":true}}}`, 422, "accept"},
		{"education", "complete", `{"outcome":"x","work":{"assessment":{"conclusion":"c","needs_support":"yes"}}}`, 422, "needs_support"},
	} {
		status, body, h := n.do(c.agency, "POST", "/api/v1/referrals/"+r.ID.String()+"/"+c.move, c.body)
		checkProblem(t, status, body, h, c.status, c.want)
	}
	status, body, h := n.do("health", "POST", "/api/v1/referrals", n.consented("health",
		`{"to_agency":"social","service":"family_support","note":"n","work":{"benefit_decision":{"benefit":"b","decision":"refused","monthly_kzt":100}}}`))
	checkProblem(t, status, body, h, 422, "only social records")
	// Health's screening needs the family's consent to share health data.
	narrow := n.svc("health").svc
	c, err := narrow.RecordConsent(t.Context(), agency.NewConsent{GivenBy: "mother", ToAgency: "education", Purpose: "assessment",
		DataCategories: []string{agency.CategorySummary}, ExpiresAt: time.Now().Add(time.Hour)})
	if err != nil {
		t.Fatal(err)
	}
	status, body, h = n.do("health", "POST", "/api/v1/referrals", fmt.Sprintf(
		`{"to_agency":"education","service":"school_transfer","note":"n","consent_id":%q,"work":{"screening":{"kind":"k","result":"normal"}}}`, c.ID))
	checkProblem(t, status, body, h, 422, `"health"`)
	// Nothing was written: education's referral is still in progress, with
	// no work on it.
	if got, _ := n.referralStatus("education", r.ID.String()); got.Status != "in_progress" || got.Work != nil {
		t.Fatalf("a refused move was written: %+v", got)
	}
	if sent, _ := n.svc("health").svc.Sent(t.Context(), 10); len(sent) != 1 {
		t.Fatalf("health sent %d referrals, want 1", len(sent))
	}
}

// Referrals that arrive together are each handled: one to a full shelter is
// declined even when one to a shelter with a free bed comes in the same
// batch.
func TestFullShelterDeclinesWithinABatch(t *testing.T) {
	t.Parallel()
	n := newNetwork(t, "social")
	n.urls["ngo"] = newDB(t)
	n.start("ngo", oneBedShelters)
	other := n.refer("social", "ngo", "crisis_shelter", "")
	n.both(other, "received")
	n.move("ngo", other.ID, "accept", placement("1"))
	n.both(other, "accepted")

	// The shelter is down while both referrals are sent, so that they
	// arrive together when it is back.
	if err := n.svc("ngo").stop(); err != nil {
		t.Fatal(err)
	}
	full := n.refer("social", "ngo", "crisis_shelter", "")
	free := n.refer("social", "ngo", "crisis_shelter_nur", "")
	n.start("ngo", oneBedShelters)
	n.both(full, "declined")
	n.both(free, "received")
}

// An agency that signs its events lists the public key of its signatures
// in the directory.
func TestDirectoryListsSigningKey(t *testing.T) {
	t.Parallel()
	kp, err := nkeys.CreateAccount()
	if err != nil {
		t.Fatal(err)
	}
	seed, _ := kp.Seed()
	pub, _ := kp.PublicKey()
	n := newNetwork(t, "health")
	n.urls["ngo"] = newDB(t)
	n.start("ngo", func(c *agency.Config) { c.SigningSeed = seed })
	eventually(t, 10*time.Second, func() error {
		_, body, _ := n.do("health", "GET", "/api/v1/directory", "")
		d := decode[struct {
			Agencies []agency.Listing `json:"agencies"`
		}](t, body)
		for _, l := range d.Agencies {
			switch {
			case l.Agency == "ngo" && l.SigningKey == pub:
				return nil
			case l.Agency == "health" && l.SigningKey != "":
				t.Fatalf("health signs nothing, yet lists the key %s", l.SigningKey)
			}
		}
		return fmt.Errorf("directory: %s", body)
	})
}
