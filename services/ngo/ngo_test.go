package ngo_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/refbus/refbus/pkg/pgtest"
	"github.com/refbus/refbus/services/health"
	"github.com/refbus/refbus/services/internal/core"
	"github.com/refbus/refbus/services/internal/core/app"
	"github.com/refbus/refbus/services/internal/core/directory"
	"github.com/refbus/refbus/services/internal/core/nodetest"
	"github.com/refbus/refbus/services/ngo"
	"github.com/refbus/refbus/services/social"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

// shelters gives an NGO node two shelters of beds beds each, and legal
// help, which takes no one in.
func shelters(beds int) func(*core.Config) {
	return func(c *core.Config) {
		c.Organizations = []directory.Organization{nodetest.Org("ngo",
			directory.Offer{Name: "crisis_shelter", Title: "Zhan-Saya", Eligibility: "women and children", Languages: []string{"kk", "ru"}, Area: "Almaty", Beds: beds},
			directory.Offer{Name: "crisis_shelter_nur", Title: "Nur", Eligibility: "women and children", Languages: []string{"ru"}, Area: "Almaty region", Beds: beds},
			directory.Offer{Name: "legal_help", Title: "Legal consultation", Eligibility: "families", Languages: []string{"kk"}, Area: "Almaty"},
		)}
	}
}

// oneBedShelters is an NGO node with two shelters of one bed each.
var oneBedShelters = shelters(1)

// Every node lists its services in the directory; a referral for a
// service the target does not offer is refused; a shelter's free beds go
// down with each placement and up when a stay ends (completed, cancelled,
// forwarded); a referral to a full shelter is declined with no_capacity,
// and the sender sends the family to another shelter.
func TestDirectoryAndShelterCapacity(t *testing.T) {
	t.Parallel()
	n := nodetest.New(t)
	n.Start("health", health.New(), nil)
	n.Start("social", social.New(), nil)
	n.Start("ngo", ngo.New(), oneBedShelters)

	status, body, _ := n.Do("health", "GET", "/api/v1/directory", "")
	d := nodetest.Decode[struct {
		Nodes []directory.Listing `json:"nodes"`
	}](t, body)
	if status != 200 || len(d.Nodes) != 3 || d.Nodes[0].Node != "health" || d.Nodes[1].Node != "ngo" || d.Nodes[1].Kind != "ngo" ||
		len(d.Nodes[1].Organizations) != 1 || len(d.Nodes[1].Organizations[0].Services) != 3 {
		t.Fatalf("directory: %d %s", status, body)
	}
	n.WantFreeBeds("health", "ngo", "crisis_shelter", 1)

	n.Refused("health", "POST", "/api/v1/referrals", n.Consented("health", `{"to_org":"ngo","service":"brain_surgery","note":"n"}`),
		422, `ngo does not offer the service "brain_surgery"`, "crisis_shelter_nur")
	if sent, _ := n.App("health").Sent(t.Context(), "", 10); len(sent) != 0 {
		t.Fatalf("a refused referral was written: %+v", sent)
	}

	a := n.Refer("social", "ngo", "crisis_shelter", "", "")
	n.Both(a, "received")
	accept := "/api/v1/referrals/" + a.ID.String() + "/accept"
	for _, c := range []struct{ body, want string }{
		{``, "work.placement"},
		{fmt.Sprintf(`{"work":{"placement":{"bed":"1","address":"x","ends_on":%q}}}`, nodetest.Date(7)), "at most 6 months"},
		{`{"work":{"placement":{"bed":"1","address":"x","ends_on":"2020-01-01"}}}`, "after starts_on"},
		{`{"work":{"screening":{"kind":"x","result":"normal"}}}`, "a ngo node does not record screening; it records placement"},
		{fmt.Sprintf(`{"work":{"placement":{"bed":"1","ends_on":%q}}}`, nodetest.Date(1)), "address"},
	} {
		n.Refused("ngo", "POST", accept, c.body, 422, c.want)
	}
	n.WantFreeBeds("health", "ngo", "crisis_shelter", 1)
	n.Move("ngo", a.ID, "accept", nodetest.Placement("1"))
	n.Both(a, "accepted")
	n.WantFreeBeds("health", "ngo", "crisis_shelter", 0)

	// The shelter is full: the next family is declined at once.
	b := n.Refer("social", "ngo", "crisis_shelter", "", "")
	n.Both(b, "declined")
	if got, _ := n.Referral("social", b.ID); got.ReasonCode != "no_capacity" || !strings.Contains(got.Reason, "another shelter") {
		t.Fatalf("social sees the decline as %+v", got)
	}
	// The sender sends the family to the other shelter, in the same case.
	b2 := n.Refer("social", "ngo", "crisis_shelter_nur", b.CaseID.String(), "")
	n.Both(b2, "received")
	n.Move("ngo", b2.ID, "accept", nodetest.Placement("N-1"))
	n.WantFreeBeds("social", "ngo", "crisis_shelter_nur", 0)

	// Stays end: the shelter completes one, the sender cancels the other.
	n.Move("ngo", a.ID, "start", ``)
	n.Move("ngo", a.ID, "complete", `{"outcome":"the family moved to a rented flat"}`)
	n.WantFreeBeds("health", "ngo", "crisis_shelter", 1)
	n.Move("social", b2.ID, "cancel", `{"reason":"the family went to relatives"}`)
	n.Both(b2, "cancelled")
	n.WantFreeBeds("health", "ngo", "crisis_shelter_nur", 1)
	// A freed bed takes the next family.
	c := n.Refer("social", "ngo", "crisis_shelter", "", "")
	n.Both(c, "received")
	n.Move("ngo", c.ID, "accept", nodetest.Placement("1"))
	n.WantFreeBeds("health", "ngo", "crisis_shelter", 0)
	// A stay the shelter forwards ends there too.
	n.Move("ngo", c.ID, "forward", n.Consented("ngo", `{"to_org":"social","service":"housing","note":"the family needs a flat"}`))
	n.Both(c, "forwarded")
	n.WantFreeBeds("health", "ngo", "crisis_shelter", 1)
	// Every stay ended: no row's last column (ended_at) is empty.
	for _, row := range n.WantRows("ngo", "ngo.placement", 3) {
		if strings.HasSuffix(row, ",)") {
			t.Errorf("a stay that ended is running in ngo.placement: %s", row)
		}
	}
}

// Referrals that arrive together are each handled: one to a full shelter is
// declined even when one to a shelter with a free bed comes in the same
// batch.
func TestFullShelterDeclinesWithinABatch(t *testing.T) {
	t.Parallel()
	n := nodetest.New(t)
	n.Start("social", social.New(), nil)
	n.Start("ngo", ngo.New(), oneBedShelters)
	other := n.Refer("social", "ngo", "crisis_shelter", "", "")
	n.Both(other, "received")
	n.Move("ngo", other.ID, "accept", nodetest.Placement("1"))
	n.Both(other, "accepted")

	// The shelter is down while both referrals are sent, so that they
	// arrive together when it is back.
	if err := n.Node("ngo").Stop(); err != nil {
		t.Fatal(err)
	}
	full := n.Refer("social", "ngo", "crisis_shelter", "", "")
	free := n.Refer("social", "ngo", "crisis_shelter_nur", "", "")
	n.Restart("ngo", oneBedShelters)
	n.Both(full, "declined")
	n.Both(free, "received")
	if got, _ := n.Referral("ngo", full.ID); got.ReasonCode != "no_capacity" {
		t.Fatalf("the shelter declined %+v", got)
	}
}

// A shelter's placement is checked before anything is written: a bed is
// taken only by accepting a referral to a service that takes people in,
// with a placement that starts no earlier than yesterday, lasts at most
// six months, in a bed not taken, while a bed is free.
func TestPlacementRefusals(t *testing.T) {
	t.Parallel()
	n := nodetest.New(t)
	n.Start("social", social.New(), nil)
	n.Start("ngo", ngo.New(), shelters(2))
	r1 := n.Refer("social", "ngo", "crisis_shelter", "", "")
	r2 := n.Refer("social", "ngo", "crisis_shelter", "", "")
	r3 := n.Refer("social", "ngo", "crisis_shelter", "", "")
	legal := n.Refer("social", "ngo", "legal_help", "", "")
	for _, r := range []app.Referral{r1, r2, r3, legal} {
		n.Both(r, "received")
	}
	accept := func(id uuid.UUID) string { return "/api/v1/referrals/" + id.String() + "/accept" }
	for _, c := range []struct {
		path, body string
		want       int
		text       string
	}{
		{accept(r1.ID), ``, 422, "accepting a referral to crisis_shelter takes a bed: give work.placement"},
		{accept(r1.ID), `{"note":"no placement"}`, 422, "work.placement"},
		{accept(r1.ID), fmt.Sprintf(`{"work":{"placement":{"bed":"1","address":"x","ends_on":%q}}}`, time.Now().UTC().AddDate(0, 6, 2).Format(time.DateOnly)), 422, "a stay lasts at most 6 months"},
		{accept(r1.ID), fmt.Sprintf(`{"work":{"placement":{"bed":"1","address":"x","starts_on":%q,"ends_on":%q}}}`, time.Now().UTC().AddDate(0, 0, -10).Format(time.DateOnly), nodetest.Date(1)), 422, "is in the past"},
		{accept(r1.ID), `{"work":{"placement":{"bed":"1","address":"x","starts_on":"tomorrow","ends_on":"2030-01-01"}}}`, 422, "starts_on"},
		{accept(legal.ID), nodetest.Placement("1"), 422, "legal_help takes no one in: a placement needs a shelter service"},
	} {
		n.Refused("ngo", "POST", c.path, c.body, c.want, c.text)
	}
	// No new referral carries a placement: it is made on accepting.
	n.Refused("ngo", "POST", "/api/v1/referrals", n.Consented("ngo", `{"to_org":"social","service":"housing","note":"n","work":`+strings.TrimPrefix(nodetest.Placement("1"), `{"work":`)),
		422, "a placement is made when a shelter accepts a referral")
	// Nothing was written: no bed taken, no stay, no referral moved.
	n.WantFreeBeds("social", "ngo", "crisis_shelter", 2)
	n.WantRows("ngo", "ngo.placement", 0)
	for _, r := range []app.Referral{r1, legal} {
		if got, _ := n.Referral("ngo", r.ID); got.Status != "received" || got.Work != nil {
			t.Fatalf("a refused accept was written: %+v", got)
		}
	}

	n.Move("ngo", r1.ID, "accept", nodetest.Placement("1"))
	n.WantFreeBeds("social", "ngo", "crisis_shelter", 1)
	// Bed 1 is taken: the next family needs another bed.
	n.Refused("ngo", "POST", accept(r2.ID), nodetest.Placement("1"), 409, "bed 1 of crisis_shelter is taken")
	n.WantFreeBeds("social", "ngo", "crisis_shelter", 1)
	n.Move("ngo", r2.ID, "accept", nodetest.Placement("2"))
	n.WantFreeBeds("social", "ngo", "crisis_shelter", 0)
	// r3 came while a bed was free; there is none now.
	n.Refused("ngo", "POST", accept(r3.ID), nodetest.Placement("3"), 409, "no free bed in crisis_shelter: decline with reason_code no_capacity")
	if got, _ := n.Referral("ngo", r3.ID); got.Status != "received" {
		t.Fatalf("a refused accept was written: %+v", got)
	}
	n.Move("ngo", r3.ID, "decline", `{"reason_code":"no_capacity","reason":"the shelter filled up"}`)
	n.Both(r3, "declined")
	n.WantRows("ngo", "ngo.placement", 2)
	// A stay is recorded once: a second placement is refused as such, even
	// when the shelter is full.
	n.Move("ngo", r1.ID, "start", ``)
	n.Refused("ngo", "POST", "/api/v1/referrals/"+r1.ID.String()+"/complete", `{"outcome":"moved on","work":`+strings.TrimPrefix(nodetest.Placement("7"), `{"work":`),
		409, "referral "+r1.ID.String()+" already has its placement")
	n.WantRows("ngo", "ngo.placement", 2)
	// Legal help is accepted without a placement.
	n.Move("ngo", legal.ID, "accept", ``)
}

// The shelter's address stays at the shelter: the node that referred the
// family learns that it is placed, in which bed and until when, not where;
// no other node learns it either, not the clinic the shelter refers the
// mother to in the same case, and it is nowhere on the stream.
func TestShelterAddressStaysAtTheShelter(t *testing.T) {
	t.Parallel()
	n := nodetest.New(t)
	n.Start("social", social.New(), nil)
	n.Start("ngo", ngo.New(), nil)
	n.Start("polyclinic", health.New(), nil)

	r := n.Refer("social", "ngo", "crisis_shelter", "", "")
	n.Both(r, "received")
	n.Move("ngo", r.ID, "accept", nodetest.Placement("Z-12"))
	n.Both(r, "accepted")
	nodetest.Eventually(t, 10*time.Second, func() error {
		got, err := n.Referral("social", r.ID)
		if err != nil || got.Work == nil || got.Work.Placement == nil {
			return fmt.Errorf("social has no placement: %+v %v", got, err)
		}
		if p := got.Work.Placement; p.Address != "" || p.SealedAddress != "" || p.Bed != "Z-12" || p.EndsOn != nodetest.Date(3) || p.StartsOn != nodetest.Date(0) {
			return fmt.Errorf("social, which referred the family, sees the placement as %+v", p)
		}
		return nil
	})
	// The shelter keeps it, as the API shows it to the shelter.
	if got, _ := n.Referral("ngo", r.ID); got.Work == nil || got.Work.Placement == nil || got.Work.Placement.Address != nodetest.ShelterAddress {
		t.Fatalf("the shelter's own view of the placement: %+v", got.Work)
	}
	n.WantRows("ngo", "ngo.placement", 1, r.ID.String(), nodetest.ShelterAddress, "Z-12")

	// The mother's check at the clinic, in the same case.
	check := n.Refer("ngo", "polyclinic", "medical_accompaniment", r.CaseID.String(), "")
	n.Both(check, "received")
	n.Move("polyclinic", check.ID, "accept", ``)
	n.Both(check, "accepted")

	n.WantSecretOnlyAt(nodetest.ShelterAddress, []string{"ngo"}, []string{"social", "polyclinic"}, r.CaseID)
}

// The shelter alone discloses where a family stays: to one named
// organization of another node, for a purpose and until a time. Bad
// requests are refused with the reason; the address then reaches that
// organization's caseworkers only (not the node as a whole, not the
// referring organization), and is forgotten at its time.
func TestShelterDisclosesAddressToOneOrganization(t *testing.T) {
	t.Parallel()
	n := nodetest.New(t)
	n.Start("social", social.New(), nil)
	n.Start("ngo", ngo.New(), nil)
	n.Start("polyclinic", health.New(), nil)
	ctx := context.Background()
	r := n.Refer("social", "ngo", "crisis_shelter", "", "")
	n.Both(r, "received")
	path := "/api/v1/referrals/" + r.ID.String() + "/disclose-address"
	soon := func(d time.Duration) string { return time.Now().Add(d).UTC().Format(time.RFC3339Nano) }
	body := func(to, purpose, until string) string {
		return fmt.Sprintf(`{"to_org":%q,"purpose":%q,"until":%q}`, to, purpose, until)
	}
	n.Refused("ngo", "POST", path, body("polyclinic", "home visit", soon(time.Hour)), 409, "no placement")
	n.Move("ngo", r.ID, "accept", nodetest.Placement("Z-12"))
	n.Both(r, "accepted")
	n.Refused("ngo", "POST", path, body("polyclinic", "home visit", "2020-01-01T00:00:00Z"), 422, "has passed")
	n.Refused("ngo", "POST", path, body("polyclinic", "home visit", soon(200*24*time.Hour)), 422, "after the stay ends")
	n.Refused("ngo", "POST", path, body("nowhere", "home visit", soon(time.Hour)), 422, "nowhere")
	n.Refused("ngo", "POST", path, body("ngo", "home visit", soon(time.Hour)), 422, "of this node")
	n.Refused("social", "POST", path, body("polyclinic", "home visit", soon(time.Hour)), 409, "no placement")
	forOrg := func(node, org string) []app.Disclosure {
		t.Helper()
		ds, err := n.App(node).Disclosures(app.WithOrg(ctx, org))
		if err != nil {
			t.Fatal(err)
		}
		return ds
	}

	// A disclosure for two seconds is forgotten after them.
	status, res, _ := n.Do("ngo", "POST", path, body("polyclinic", "a nurse's call", soon(2*time.Second)))
	if status != 200 || strings.Contains(res, nodetest.ShelterAddress) {
		t.Fatalf("disclose: %d %s", status, res)
	}
	nodetest.Eventually(t, 30*time.Second, func() error {
		if ds := forOrg("polyclinic", "polyclinic"); len(ds) != 1 || ds[0].Address != nodetest.ShelterAddress {
			return fmt.Errorf("the polyclinic's caseworkers see %+v", ds)
		}
		return nil
	})
	nodetest.Eventually(t, 10*time.Second, func() error {
		if ds := forOrg("polyclinic", "polyclinic"); len(ds) != 0 {
			return fmt.Errorf("after its time the polyclinic still sees %+v", ds)
		}
		return nil
	})
	if k, err := n.App("polyclinic").DropExpiredDisclosures(ctx); err != nil || k != 1 {
		t.Fatalf("forgot %d disclosures, %v", k, err)
	}
	if strings.Contains(n.StoreText("polyclinic"), nodetest.ShelterAddress) {
		t.Fatal("the polyclinic's store still holds the address after its time")
	}

	// A disclosure for a home visit: the polyclinic's caseworkers see it,
	// nobody else.
	status, res, _ = n.Do("ngo", "POST", path, body("polyclinic", "patronage nurse's home visit", soon(time.Hour)))
	if status != 200 {
		t.Fatalf("disclose: %d %s", status, res)
	}
	nodetest.Eventually(t, 30*time.Second, func() error {
		if ds := forOrg("polyclinic", "polyclinic"); len(ds) != 1 || ds[0].Address != nodetest.ShelterAddress || ds[0].Purpose != "patronage nurse's home visit" {
			return fmt.Errorf("the polyclinic's caseworkers see %+v", ds)
		}
		return nil
	})
	if ds := forOrg("polyclinic", ""); len(ds) != 0 {
		t.Errorf("the polyclinic's node as a whole sees %+v", ds)
	}
	if ds := forOrg("social", "social"); len(ds) != 0 {
		t.Errorf("the referring organization sees %+v", ds)
	}
	if ds := forOrg("ngo", "ngo"); len(ds) != 1 || ds[0].Address != "" || ds[0].ToOrg != "polyclinic" {
		t.Errorf("the shelter's record of what it disclosed: %+v", ds)
	}
	n.WantSecretOnlyAt(nodetest.ShelterAddress, []string{"ngo", "polyclinic"}, []string{"social"}, r.CaseID)
}

// An NGO node's store holds the bus's tables, the core's and the NGO's,
// nothing else; and it records placements, no other kind's work.
func TestStoreAndRecordsAreNGOs(t *testing.T) {
	t.Parallel()
	n := nodetest.New(t)
	n.Start("social", social.New(), nil)
	n.Start("ngo", ngo.New(), nil)
	r := n.Refer("social", "ngo", "legal_help", "", "")
	n.Both(r, "received")
	n.Move("ngo", r.ID, "accept", ``)
	n.Move("ngo", r.ID, "start", ``)

	n.WantTables("ngo", "ngo.capacity", "ngo.goose_db_version", "ngo.placement")
	n.WantOwnWorkOnly("ngo", "ngo", []string{"placement"}, r.ID, "social", "family_support")
}
