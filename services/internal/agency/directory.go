package agency

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/refbus/refbus/services/internal/db"
)

// DirectoryBucket is the JetStream KV bucket of the service directory: one
// key per agency, holding its Listing.
const DirectoryBucket = "refbus_directory"

// Offer is a service an agency offers, as the directory lists it.
type Offer struct {
	Name        string   `json:"name" doc:"What a referral names in its service field."`
	Title       string   `json:"title"`
	Eligibility string   `json:"eligibility" doc:"Who may be referred."`
	Languages   []string `json:"languages" doc:"Languages the service is given in (ISO 639-1)."`
	Area        string   `json:"area" doc:"Where it is given."`
	// Beds is how many people the service takes in at once (a shelter);
	// zero for a service that takes no one in.
	Beds     int  `json:"beds,omitempty" doc:"Places, for a service that takes people in."`
	FreeBeds *int `json:"free_beds,omitempty" doc:"Places free now; a referral when none is free is declined with no_capacity."`
}

// Listing is one agency's entry in the directory.
type Listing struct {
	Agency   string  `json:"agency"`
	Services []Offer `json:"services"`
	// PublicKey is the agency's X25519 key (base64) that confidential
	// fields meant for it are sealed to.
	PublicKey string `json:"public_key" doc:"X25519 public key (base64) that confidential fields for this agency are sealed to (HPKE, RFC 9180)."`
	// SigningKey is the nkeys public key of the agency's Ed25519
	// signatures (schemas/SIGNING.md), for operators to compare with
	// their trust anchors; an agency that does not sign has none.
	SigningKey string `json:"signing_key,omitempty" doc:"Ed25519 public key (nkeys) that checks this agency's event signatures; compare it with your trust anchors (REFBUS_TRUST), which are what receivers check."`
}

var (
	ru = []string{"ru"}
	kk = []string{"kk", "ru"}
	ky = []string{"ky", "ru"}
)

// DefaultDirectory is what each agency offers unless configured otherwise.
var DefaultDirectory = map[string][]Offer{
	"health": {
		{Name: "child_health_check", Title: "Pediatric check of a child", Eligibility: "children 0-18", Languages: kk, Area: "Almaty"},
		{Name: "medical_accompaniment", Title: "Medical accompaniment of a pregnancy or a newborn", Eligibility: "pregnant women, mothers of infants", Languages: kk, Area: "Almaty"},
		{Name: "medical_rehabilitation", Title: "Medical rehabilitation", Eligibility: "children with a developmental disorder", Languages: kk, Area: "Almaty"},
	},
	"education": {
		{Name: "early_intervention_assessment", Title: "PMPK assessment and early intervention", Eligibility: "children 0-7 with a suspected developmental delay", Languages: kk, Area: "Almaty"},
		{Name: "school_transfer", Title: "School or kindergarten transfer", Eligibility: "children of school and preschool age", Languages: kk, Area: "Almaty"},
	},
	"social": {
		{Name: "family_support", Title: "Family Support Centre: social, legal and psychological help", Eligibility: "families in difficulty", Languages: kk, Area: "Almaty"},
		{Name: "disability_support", Title: "Disability support and social rehabilitation", Eligibility: "children with a disability and their families", Languages: kk, Area: "Almaty"},
		{Name: "benefits_and_housing", Title: "Benefits and housing help", Eligibility: "low-income families, mothers with newborns", Languages: kk, Area: "Almaty"},
		{Name: "housing", Title: "Housing help", Eligibility: "families at risk of losing their home", Languages: ky, Area: "Bishkek"},
	},
	"ngo": {
		{Name: "crisis_shelter", Title: "Crisis centre Zhan-Saya: safe stay up to 6 months", Eligibility: "women and children who suffered domestic violence", Languages: kk, Area: "Almaty", Beds: 52},
		{Name: "crisis_shelter_nur", Title: "Crisis centre Nur: safe stay up to 6 months", Eligibility: "women and children who suffered domestic violence", Languages: ru, Area: "Almaty region", Beds: 12},
		{Name: "mothers_home", Title: "Mother's Home (Ene üyü): temporary housing and help", Eligibility: "pregnant women and mothers of newborns in crisis", Languages: ky, Area: "Bishkek", Beds: 20},
		{Name: "psychological_help", Title: "Psychological help", Eligibility: "families in crisis", Languages: kk, Area: "Almaty"},
		{Name: "legal_help", Title: "Legal consultation", Eligibility: "families in crisis", Languages: kk, Area: "Almaty"},
	},
}

// ensureDirectory opens the directory bucket and records the beds of the
// services that take people in.
func (s *Service) ensureDirectory(ctx context.Context, js jetstream.JetStream) error {
	var err error
	s.dir, err = js.CreateOrUpdateKeyValue(ctx, jetstream.KeyValueConfig{
		Bucket:      DirectoryBucket,
		Description: "agency -> the services it offers, with free places",
		Storage:     jetstream.FileStorage,
		Replicas:    max(s.cfg.Stream.Replicas, 1),
		History:     1,
	})
	if err != nil {
		return fmt.Errorf("ensure directory: %w", err)
	}
	q := db.New(s.pool)
	for _, o := range s.cfg.Services {
		if o.Beds > 0 {
			if err := q.CapacitySet(ctx, db.CapacitySetParams{Service: o.Name, Beds: int32(o.Beds)}); err != nil {
				return fmt.Errorf("record capacity of %s: %w", o.Name, err)
			}
		}
	}
	return s.publishDirectory(ctx)
}

// publishDirectory puts this agency's listing, with its free places now,
// into the directory if it changed since the last time.
func (s *Service) publishDirectory(ctx context.Context) error {
	caps, err := db.New(s.pool).CapacityList(ctx)
	if err != nil {
		return fmt.Errorf("read capacity: %w", err)
	}
	signing, err := s.cfg.SigningKey()
	if err != nil {
		return err
	}
	l := Listing{Agency: s.self, Services: slices.Clone(s.cfg.Services), PublicKey: s.publicKey(), SigningKey: signing}
	for i, o := range l.Services {
		for _, c := range caps {
			if c.Service == o.Name && o.Beds > 0 {
				free := max(int(c.Beds-c.Used), 0)
				l.Services[i].FreeBeds = &free
			}
		}
	}
	b, err := json.Marshal(l)
	if err != nil {
		return err
	}
	s.pubMu.Lock()
	defer s.pubMu.Unlock()
	if bytes.Equal(b, s.published) {
		return nil
	}
	if _, err := s.dir.Put(ctx, s.self, b); err != nil {
		return fmt.Errorf("publish directory: %w", err)
	}
	s.published = b
	return nil
}

// runDirectory keeps this agency's listing current, so places taken or
// freed by events applied from the bus show within a tick, and keeps the
// other agencies' listings at hand from a watch on the bucket, so that
// making a referral costs no directory read.
func (s *Service) runDirectory(ctx context.Context) error {
	tick := time.NewTicker(s.cfg.DirectoryTick)
	defer tick.Stop()
	w, err := s.dir.WatchAll(ctx)
	if err != nil {
		return fmt.Errorf("watch directory: %w", err)
	}
	defer func() { _ = w.Stop() }()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-tick.C:
			if err := s.publishDirectory(ctx); err != nil && ctx.Err() == nil {
				s.log.Warn("directory", "err", err)
			}
		case e, ok := <-w.Updates():
			if !ok {
				return nil
			}
			if e == nil {
				continue // the initial values are in
			}
			var l Listing
			if e.Operation() != jetstream.KeyValuePut || json.Unmarshal(e.Value(), &l) != nil {
				s.forget(e.Key())
				continue
			}
			s.dirMu.Lock()
			s.listings[e.Key()] = l
			s.dirMu.Unlock()
		}
	}
}

func (s *Service) forget(agency string) {
	s.dirMu.Lock()
	delete(s.listings, agency)
	s.dirMu.Unlock()
}

// Directory lists every agency's services, as the agencies published them.
func (s *Service) Directory(ctx context.Context) ([]Listing, error) {
	keys, err := s.dir.Keys(ctx)
	if errors.Is(err, jetstream.ErrNoKeysFound) {
		return []Listing{}, nil
	}
	if err != nil {
		return nil, fmt.Errorf("list directory: %w", err)
	}
	slices.Sort(keys)
	out := make([]Listing, 0, len(keys))
	for _, k := range keys {
		e, err := s.dir.Get(ctx, k)
		if errors.Is(err, jetstream.ErrKeyNotFound) {
			continue // gone since Keys
		}
		if err != nil {
			return nil, fmt.Errorf("read directory: %w", err)
		}
		var l Listing
		if err := json.Unmarshal(e.Value(), &l); err != nil {
			return nil, fmt.Errorf("read directory entry of %s: %w", k, err)
		}
		out = append(out, l)
	}
	return out, nil
}

// listing is the directory entry of agency: from the watch, or read from
// the bucket before the watch has it.
func (s *Service) listing(ctx context.Context, agency string) (Listing, error) {
	s.dirMu.Lock()
	l, ok := s.listings[agency]
	s.dirMu.Unlock()
	if ok {
		return l, nil
	}
	e, err := s.dir.Get(ctx, agency)
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return l, fmt.Errorf("%w: %s has published no services in the directory: it offers nothing yet", ErrInvalid, agency)
	}
	if err != nil {
		return l, fmt.Errorf("read directory: %w", err)
	}
	if err := json.Unmarshal(e.Value(), &l); err != nil {
		return l, fmt.Errorf("read directory entry of %s: %w", agency, err)
	}
	return l, nil
}

// checkOffered returns ErrInvalid unless agency offers service.
func (s *Service) checkOffered(ctx context.Context, agency, service string) error {
	l, err := s.listing(ctx, agency)
	if err != nil {
		return err
	}
	var names []string
	for _, o := range l.Services {
		if o.Name == service {
			return nil
		}
		names = append(names, o.Name)
	}
	return fmt.Errorf("%w: %s does not offer the service %q; it offers %s (GET /api/v1/directory)", ErrInvalid, agency, service, strings.Join(names, ", "))
}

// offer returns this agency's own offer of service.
func (s *Service) offer(service string) (Offer, bool) {
	for _, o := range s.cfg.Services {
		if o.Name == service {
			return o, true
		}
	}
	return Offer{}, false
}
