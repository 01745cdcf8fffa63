package core_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	ce "github.com/cloudevents/sdk-go/v2/event"
	"github.com/nats-io/nkeys"

	"github.com/refbus/refbus/services/internal/core"
	"github.com/refbus/refbus/services/internal/core/directory"
	"github.com/refbus/refbus/services/internal/core/nodetest"
	"github.com/refbus/refbus/services/internal/network"
)

// shelterOffers are a node's own offers, set in its config over its kind's:
// a service with deadlines, and one without.
var shelterOffers = []directory.Offer{
	{Name: "crisis_shelter", Title: "Zhan-Saya", Eligibility: "women and children", Languages: []string{"kk", "ru"}, Area: "Almaty",
		AcceptWithin: directory.Duration(2 * time.Hour), CompleteWithin: directory.Duration(4392 * time.Hour)},
	legalHelp,
}

// Every node lists its organizations and their services in the
// directory, with their deadlines and the key to seal to it; a node that
// names no organizations hosts one named after it, offering its kind's
// services; a referral for a service the organization does not offer is
// refused, naming what it offers, and writes nothing.
func TestDirectoryListsOffers(t *testing.T) {
	t.Parallel()
	n := nodetest.New(t)
	n.Start("clinic", plain(healthCheck), nil)
	n.Start("school", plain(schoolTransfer), nil)
	n.Start("shelter", plain(familySupport), func(c *core.Config) {
		c.Organizations = []directory.Organization{nodetest.Org("shelter", shelterOffers...)}
	})

	var ls []directory.Listing
	nodetest.Eventually(t, 30*time.Second, func() error {
		if ls = directoryOf(t, n, "clinic"); len(ls) != 3 {
			return fmt.Errorf("the directory lists %d nodes, want 3: %+v", len(ls), ls)
		}
		return nil
	})
	want := map[string][]string{"clinic": {"child_health_check"}, "school": {"school_transfer"}, "shelter": {"crisis_shelter", "legal_help"}}
	for i, name := range []string{"clinic", "school", "shelter"} {
		l := ls[i]
		if l.Node != name || l.Kind != "plain" || len(l.Organizations) != 1 || l.Organizations[0].ID != name || l.Organizations[0].Name != name ||
			fmt.Sprint(l.Organizations[0].ServiceNames()) != fmt.Sprint(want[name]) || l.PublicKey == "" || l.SigningKey != "" {
			t.Errorf("listing %d: %+v, want %s hosting %s offering %v with a public key", i, l, name, name, want[name])
		}
	}
	if o, ok := ls[2].Organizations[0].Offer("crisis_shelter"); !ok || o.AcceptWithin != directory.Duration(2*time.Hour) || o.CompleteWithin != directory.Duration(4392*time.Hour) || o.Title != "Zhan-Saya" {
		t.Errorf("the shelter's crisis_shelter: %+v", o)
	}
	if _, body, _ := n.Do("school", "GET", "/api/v1/directory", ""); !strings.Contains(body, `"accept_within":"2h0m0s"`) || !strings.Contains(body, `"complete_within":"4392h0m0s"`) {
		t.Errorf("the directory does not write deadlines as durations: %s", body)
	}

	status, body, h := n.Do("clinic", "POST", "/api/v1/referrals", n.Consented("clinic", `{"to_org":"shelter","service":"family_support","note":"n"}`))
	checkProblem(t, status, body, h, 422, `shelter does not offer the service "family_support"`, "crisis_shelter, legal_help")
	if sent, _ := n.App("clinic").Sent(t.Context(), "", 10); len(sent) != 0 {
		t.Fatalf("a refused referral was written: %+v", sent)
	}
	r := n.Refer("clinic", "shelter", "crisis_shelter", "", "")
	n.Both(r, "received")
}

// A node that signs its events lists the public key of its signatures in
// the directory; one that does not lists none.
func TestDirectoryListsSigningKey(t *testing.T) {
	t.Parallel()
	kp, err := nkeys.CreateAccount()
	if err != nil {
		t.Fatal(err)
	}
	seed, _ := kp.Seed()
	pub, _ := kp.PublicKey()
	n := nodetest.New(t)
	n.Start("clinic", plain(healthCheck), nil)
	n.Start("legal_aid", plain(legalHelp), func(c *core.Config) { c.SigningSeed = seed })
	nodetest.Eventually(t, 30*time.Second, func() error {
		ls := directoryOf(t, n, "clinic")
		found := false
		for _, l := range ls {
			switch {
			case l.Node == "legal_aid" && l.SigningKey == pub:
				found = true
			case l.Node == "clinic" && l.SigningKey != "":
				t.Fatalf("the clinic signs nothing, yet lists the key %s", l.SigningKey)
			}
		}
		if !found {
			return fmt.Errorf("directory: %+v", ls)
		}
		return nil
	})
}

// A node files what it receives under the organization the request names;
// a request from before organizations (no to_org, no from_org) goes to
// its first, from the organization named after its sender; one for an
// organization it does not host is refused at the bus, saying so.
func TestRequestsFiledByOrganization(t *testing.T) {
	t.Parallel()
	n := nodetest.New(t)
	n.Start("legal_aid", plain(legalHelp), func(c *core.Config) {
		c.Organizations = []directory.Organization{nodetest.Org("kz-legal-aid-almaty", legalHelp), nodetest.Org("kz-legal-aid-shymkent", legalHelp)}
	})
	n.Start("clinic", plain(healthCheck), nil)
	js := n.JetStream()
	old := requestedEvent(t, n, "clinic", map[string]any{"to_agency": "legal_aid", "service": "legal_help", "note": "sent by an older node"})
	second := requestedEvent(t, n, "clinic", map[string]any{"to_agency": "legal_aid", "from_org": "clinic", "to_org": "kz-legal-aid-shymkent", "service": "legal_help", "note": "n"})
	elsewhere := requestedEvent(t, n, "clinic", map[string]any{"to_agency": "legal_aid", "to_org": "kz-nur", "service": "legal_help", "note": "n"})
	for _, e := range []*ce.Event{old, second, elsewhere} {
		publish(t, js, "clinic", "legal_aid", e)
	}
	for _, c := range []struct {
		e        *ce.Event
		from, to string
	}{{old, "clinic", "kz-legal-aid-almaty"}, {second, "clinic", "kz-legal-aid-shymkent"}} {
		nodetest.Eventually(t, 30*time.Second, func() error {
			r, err := n.Referral("legal_aid", nodetest.MustUUID(t, c.e.Subject()))
			if err == nil && (r.FromOrg != c.from || r.ToOrg != c.to) {
				err = fmt.Errorf("legal_aid files %s from %s to %s, want from %s to %s", r.ID, r.FromOrg, r.ToOrg, c.from, c.to)
			}
			return err
		})
	}
	nodetest.Eventually(t, 30*time.Second, func() error {
		reasons, err := rejectionReasons(n, "legal_aid")
		if err == nil && (len(reasons) != 1 || !strings.Contains(reasons[0], "organization kz-nur, which legal_aid does not host")) {
			err = fmt.Errorf("rejections %q", reasons)
		}
		return err
	})
	if _, err := n.Referral("legal_aid", nodetest.MustUUID(t, elsewhere.Subject())); err == nil {
		t.Fatal("a referral for an organization the node does not host was filed")
	}
}

// A node's listing that was deleted from the directory (by an operator,
// or a bucket made again) is put back by the node within its ticks.
func TestDeletedListingComesBack(t *testing.T) {
	t.Parallel()
	n := nodetest.New(t)
	n.Start("legal_aid", plain(legalHelp), nil)
	kv, err := n.JetStream().KeyValue(context.Background(), network.DirectoryBucket)
	if err != nil {
		t.Fatal(err)
	}
	nodetest.Eventually(t, 30*time.Second, func() error {
		_, err := kv.Get(context.Background(), "legal_aid")
		return err
	})
	if err := kv.Delete(context.Background(), "legal_aid"); err != nil {
		t.Fatal(err)
	}
	nodetest.Eventually(t, 30*time.Second, func() error {
		_, err := kv.Get(context.Background(), "legal_aid")
		return err
	})
}
