package core_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	ce "github.com/cloudevents/sdk-go/v2/event"
	"github.com/google/uuid"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/nats-io/nkeys"

	"github.com/refbus/refbus/pkg/bus"
	"github.com/refbus/refbus/pkg/event"
	"github.com/refbus/refbus/schemas"
	"github.com/refbus/refbus/services/internal/core"
	"github.com/refbus/refbus/services/internal/core/app"
	"github.com/refbus/refbus/services/internal/core/directory"
	"github.com/refbus/refbus/services/internal/core/nodetest"
	"github.com/refbus/refbus/services/internal/network"
)

// A node that joins a running network is in the directory and receives
// referrals without any other node restarted, while referrals flow
// between the others.
func TestNodeJoinsUnderTraffic(t *testing.T) {
	t.Parallel()
	n := nodetest.New(t).WithRegistry()
	n.Start("clinic", ledgerKind(legalHelp), nil)
	n.Start("legal_aid", ledgerKind(legalHelp), nil)

	var (
		mu   sync.Mutex
		sent []uuid.UUID
	)
	stop := make(chan struct{})
	flowing := make(chan error, 1)
	go func() {
		consent := n.Consent("clinic", "legal_aid")
		for i := 0; ; i++ {
			select {
			case <-stop:
				flowing <- nil
				return
			default:
			}
			r, err := n.App("clinic").CreateReferral(context.Background(), app.NewReferral{ToOrg: "legal_aid", ConsentID: consent, Service: legalHelp.Name, Note: fmt.Sprint(i)})
			if err != nil {
				flowing <- err
				return
			}
			mu.Lock()
			sent = append(sent, r.ID)
			mu.Unlock()
			time.Sleep(5 * time.Millisecond)
		}
	}()

	n.Start("mothers_home", ledgerKind(familySupport), nil)
	var joined uuid.UUID
	nodetest.Eventually(t, 10*time.Second, func() error {
		r, err := n.App("clinic").CreateReferral(context.Background(), app.NewReferral{ToOrg: "mothers_home", ConsentID: n.Consent("clinic", "mothers_home"), Service: familySupport.Name, Note: "n"})
		joined = r.ID
		return err
	})
	nodetest.Eventually(t, 10*time.Second, n.WantStatus("mothers_home", joined, "received"))
	close(stop)
	if err := <-flowing; err != nil {
		t.Fatalf("referrals stopped flowing while a node joined: %v", err)
	}
	mu.Lock()
	ids := append([]uuid.UUID(nil), sent...)
	mu.Unlock()
	if len(ids) < 10 {
		t.Fatalf("only %d referrals flowed while the node joined", len(ids))
	}
	receivedOnce(t, n, "clinic", "legal_aid", ids, "received")
}

// Events a node makes after its suspension are rejected, with the reason,
// while the rest of the network flows; resumed, it is heard again.
func TestSuspendedNodeIsNotHeard(t *testing.T) {
	t.Parallel()
	n := nodetest.New(t).WithRegistry()
	n.Start("clinic", plain(legalHelp), nil)
	n.Start("school", plain(legalHelp), nil)
	n.Start("legal_aid", ledgerKind(legalHelp), nil)
	before := create(t, n, "clinic", "legal_aid", legalHelp.Name)
	nodetest.Eventually(t, 10*time.Second, n.WantStatus("legal_aid", before.ID, "received"))

	toClinic := n.Consent("school", "clinic")
	n.SetStatus("clinic", network.Suspended)
	// A referral to the suspended node's organization is refused, saying why.
	nodetest.Eventually(t, 10*time.Second, func() error {
		status, body, _ := n.Do("school", "POST", "/api/v1/referrals", fmt.Sprintf(`{"to_org":"clinic","service":%q,"consent_id":%q,"note":"n"}`, legalHelp.Name, toClinic))
		if status != 422 || !strings.Contains(body, "suspended") {
			return fmt.Errorf("referral to a suspended node's organization: %d %s", status, body)
		}
		return nil
	})
	suspended := create(t, n, "clinic", "legal_aid", legalHelp.Name)
	other := create(t, n, "school", "legal_aid", legalHelp.Name)
	nodetest.Eventually(t, 10*time.Second, n.WantStatus("legal_aid", other.ID, "received"))
	nodetest.Eventually(t, 10*time.Second, func() error {
		reasons, err := rejectionReasons(n, "legal_aid")
		if err == nil && !containsOne(reasons, "node clinic is suspended since") {
			err = fmt.Errorf("no rejection of the suspended node's event: %q", reasons)
		}
		return err
	})
	if _, err := n.Referral("legal_aid", suspended.ID); err == nil {
		t.Fatal("the receiver took a referral the suspended node made")
	}

	n.SetStatus("clinic", network.Active)
	after := create(t, n, "clinic", "legal_aid", legalHelp.Name)
	nodetest.Eventually(t, 10*time.Second, n.WantStatus("legal_aid", after.ID, "received"))
}

// A node refers only for the organizations the registry has it host: a
// referral, signed by its sender, that names another node's organization
// as the one referring is refused at the receiver with the reason, and
// nothing of it is recorded there; the same referral naming the sender's
// own organization is taken.
func TestSenderRefersOnlyForItsOrganizations(t *testing.T) {
	t.Parallel()
	n := nodetest.New(t).WithRegistry()
	n.Start("clinic", plain(legalHelp), nil)
	n.Start("school", plain(legalHelp), nil)
	n.Start("legal_aid", ledgerKind(legalHelp), nil)
	signer, err := event.NewSigner(n.Identity("clinic", "health").Seed)
	if err != nil {
		t.Fatal(err)
	}
	sent := func(fromOrg string) *ce.Event {
		e := requestedEvent(t, n, "clinic", map[string]any{"to_agency": "legal_aid", "from_org": fromOrg, "to_org": "legal_aid", "service": legalHelp.Name, "note": "n"})
		if _, err := signer.Sign(e); err != nil {
			t.Fatal(err)
		}
		publish(t, n.JetStream(), "clinic", "legal_aid", e)
		return e
	}
	forged, own := sent("school"), sent("clinic")
	nodetest.Eventually(t, 30*time.Second, n.WantStatus("legal_aid", uuid.MustParse(own.Subject()), "received"))
	nodetest.Eventually(t, 30*time.Second, func() error {
		reasons, err := rejectionReasons(n, "legal_aid")
		if err == nil && !containsOne(reasons, forged.ID()+": referral is from the organization school, which its sender clinic may not refer for") {
			err = fmt.Errorf("no rejection of the referral made in another node's organization's name: %q", reasons)
		}
		return err
	})
	if _, err := n.Referral("legal_aid", uuid.MustParse(forged.Subject())); err == nil {
		t.Fatal("the receiver recorded a referral its sender made in another organization's name")
	}
}

// The coordinator has no copy of another node's referral to compare an
// overdue report with: it takes one only if the organizations it names
// are the nodes' own, as the registry says.
func TestCoordinatorChecksOverdueOrganizations(t *testing.T) {
	t.Parallel()
	coordinated := func(c *core.Config) { c.Coordinator = "coordinator" }
	n := nodetest.New(t).WithRegistry()
	n.Start("clinic", plain(healthCheck), coordinated)
	n.Start("coordinator", plain(legalHelp), coordinated)
	n.Start("legal_aid", plain(legalHelp), coordinated)
	signer, err := event.NewSigner(n.Identity("clinic", "health").Seed)
	if err != nil {
		t.Fatal(err)
	}
	report := func(toOrg string) *ce.Event {
		e, err := registry(t).New(bus.Source("clinic"), schemas.TypeOverdue, uuid.NewString(), map[string]any{
			"kind": "accept", "due_at": time.Now().Add(-time.Hour).UTC().Format(time.RFC3339),
			"from_agency": "clinic", "to_agency": "legal_aid", "from_org": "clinic", "to_org": toOrg, "service": legalHelp.Name})
		if err != nil {
			t.Fatal(err)
		}
		e.SetExtension(event.ExtCaseID, uuid.NewString())
		event.SetSequence(e, 1)
		if _, err := signer.Sign(e); err != nil {
			t.Fatal(err)
		}
		publish(t, n.JetStream(), "clinic", "coordinator", e)
		return e
	}
	forged, real := report("coordinator"), report("legal_aid")
	nodetest.Eventually(t, 30*time.Second, func() error {
		es, err := n.App("coordinator").Escalations(context.Background(), 10)
		if err != nil {
			return err
		}
		var got []string
		for _, e := range es {
			got = append(got, e.ReferralID.String())
		}
		if !slices.Contains(got, real.Subject()) {
			return fmt.Errorf("escalations %v, want %s", got, real.Subject())
		}
		if slices.Contains(got, forged.Subject()) {
			t.Fatalf("the coordinator escalated a report naming another node's organization: %v", got)
		}
		reasons, err := rejectionReasons(n, "coordinator")
		if err == nil && !containsOne(reasons, forged.ID()+": overdue referral "+forged.Subject()+" names the organization coordinator of legal_aid") {
			err = fmt.Errorf("no rejection of the report naming another node's organization: %q", reasons)
		}
		return err
	})
}

// A node whose organization the administrator moved to another node no
// longer refers in its name: the request is refused with the reason.
func TestMovedOrganizationIsNoLongerReferredFor(t *testing.T) {
	t.Parallel()
	n := nodetest.New(t).WithRegistry()
	n.Start("clinic", plain(legalHelp), nil)
	n.Start("legal_aid", ledgerKind(legalHelp), nil)
	before := create(t, n, "clinic", "legal_aid", legalHelp.Name)
	nodetest.Eventually(t, 30*time.Second, n.WantStatus("legal_aid", before.ID, "received"))
	e := n.Entry("clinic")
	e.Organizations = []string{"clinic_annex"}
	n.Register(e)
	consent := n.Consent("clinic", "legal_aid")
	nodetest.Eventually(t, 30*time.Second, func() error {
		_, err := n.App("clinic").CreateReferral(context.Background(), app.NewReferral{ToOrg: "legal_aid", ConsentID: consent, Service: legalHelp.Name, Note: "n"})
		if !errors.Is(err, app.ErrInvalid) || !strings.Contains(err.Error(), "clinic_annex") {
			return fmt.Errorf("a referral for the organization the registry moved away: %v", err)
		}
		return nil
	})
}

func containsOne(list []string, subs ...string) bool {
	for _, s := range list {
		ok := true
		for _, sub := range subs {
			ok = ok && strings.Contains(s, sub)
		}
		if ok {
			return true
		}
	}
	return false
}

// A listing not signed with the key the registry holds for its node (a
// forgery, or one signed with a key since replaced), or one that gives a
// sealing key the registry does not hold, is ignored: no referral goes to
// it and nothing is sealed to its key.
func TestForgedOrStaleListingIsIgnored(t *testing.T) {
	t.Parallel()
	n := nodetest.New(t).WithRegistry()
	n.Start("social", plain(familySupport), nil)
	n.Start("shelter", plain(legalHelp), nil)
	ctx := context.Background()
	nodetest.Eventually(t, 10*time.Second, func() error {
		_, _, err := n.App("social").NewDataKey(ctx, "shelter", uuid.New())
		return err
	})
	kv, err := n.JetStream().KeyValue(ctx, network.DirectoryBucket)
	if err != nil {
		t.Fatal(err)
	}
	genuine, err := kv.Get(ctx, "shelter")
	if err != nil {
		t.Fatal(err)
	}
	var real network.Signed
	if err := json.Unmarshal(genuine.Value(), &real); err != nil {
		t.Fatal(err)
	}
	var listing directory.Listing
	if err := json.Unmarshal(real.Value, &listing); err != nil {
		t.Fatal(err)
	}

	consent := n.Consent("social", "shelter")
	attacker := nodetest.NewIdentity(t)
	forged := listing
	forged.PublicKey = attacker.SealingKey()
	stale := nodetest.NewIdentity(t) // a key the registry no longer holds
	annexing := listing
	annexing.Organizations = append(slices.Clone(listing.Organizations), nodetest.Org("kz-nur", legalHelp))
	for _, c := range []struct {
		name string
		sign nodetest.Identity
		l    directory.Listing
	}{
		{"forged: signed by another key, with its sealing key", attacker, forged},
		{"stale: signed by a key the registry replaced", stale, listing},
		{"the node's own key, but a sealing key the registry does not hold", n.Identity("shelter", ""), forged},
		{"the node's own keys, but an organization the registry does not give it", n.Identity("shelter", ""), annexing},
	} {
		kp, err := nkeys.FromSeed(c.sign.Seed)
		if err != nil {
			t.Fatal(err)
		}
		b, err := network.Sign(kp, c.l)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := kv.Put(ctx, "shelter", b); err != nil {
			t.Fatal(err)
		}
		nodetest.Eventually(t, 10*time.Second, func() error {
			if _, _, err := n.App("social").NewDataKey(ctx, "shelter", uuid.New()); !errors.Is(err, app.ErrInvalid) {
				return fmt.Errorf("%s: sealed to the listing: %v", c.name, err)
			}
			return nil
		})
		status, body, h := n.Do("social", "POST", "/api/v1/referrals", fmt.Sprintf(`{"to_org":"shelter","service":%q,"consent_id":%q,"note":"n"}`, legalHelp.Name, consent))
		nodetest.WantProblem(t, status, body, h, 422, "shelter")
	}
	// The genuine listing, put again, is taken again.
	if _, err := kv.Put(ctx, "shelter", genuine.Value()); err != nil {
		t.Fatal(err)
	}
	nodetest.Eventually(t, 10*time.Second, func() error {
		_, _, err := n.App("social").NewDataKey(ctx, "shelter", uuid.New())
		return err
	})
}

// A node the registry does not hold, or holds suspended, or holds with
// another key, does not start, and says what to do.
func TestNodeStartsOnlyAsRegistered(t *testing.T) {
	t.Parallel()
	n := nodetest.New(t).WithRegistry()
	n.Start("social", plain(familySupport), nil)
	k := plain(legalHelp)
	for _, c := range []struct {
		name, want string
		setup      func(cfg *core.Config)
	}{
		{"not registered", "refbus-admin node add", func(cfg *core.Config) {}},
		{"another key", "another signing key", func(cfg *core.Config) {
			n.Identity(cfg.Node, "plain")
			cfg.SigningSeed = nodetest.NewIdentity(t).Seed
		}},
		{"suspended", "suspended", func(cfg *core.Config) {
			n.Identity(cfg.Node, "plain")
			n.SetStatus(cfg.Node, network.Suspended)
		}},
		{"hosting an organization not registered", "does not have node hosting_an_organization_not_registered host the organization kz-nur", func(cfg *core.Config) {
			id := n.Identity(cfg.Node, "plain")
			cfg.SigningSeed, cfg.SealingKey = id.Seed, id.Sealing.Bytes()
			cfg.Organizations = []directory.Organization{nodetest.Org(cfg.Node, legalHelp), nodetest.Org("kz-nur", legalHelp)}
		}},
	} {
		node := strings.ReplaceAll(c.name, " ", "_")
		cfg := core.Config{Node: node, DatabaseURL: nodetest.NewDB(t, k), NATSURL: n.NATSURL, Anchor: n.Anchor()}
		n.Provision(node, cfg)
		id := nodetest.NewIdentity(t)
		cfg.SigningSeed, cfg.SealingKey = id.Seed, id.Sealing.Bytes()
		c.setup(&cfg)
		_, err := core.New(t.Context(), cfg, k, nodetest.Logger(t))
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: start says %v, want %q", c.name, err, c.want)
		}
	}
	if _, err := n.JetStream().KeyValue(t.Context(), network.RegistryBucket); err != nil && !errors.Is(err, jetstream.ErrBucketNotFound) {
		t.Fatal(err)
	}
}
