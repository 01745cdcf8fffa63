// Package directory is the network's service directory: one listing per
// node in a JetStream KV bucket, saying which organizations the node hosts
// and the services each offers (with their deadlines and free places), and
// the keys to seal to the node and to check its signatures. A node
// publishes its own listing and watches the others', so that making a
// referral costs no directory read.
package directory

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/refbus/refbus/pkg/bus"
)

// ErrNotListed: the node has no listing in the directory.
var ErrNotListed = errors.New("not listed in the directory")

// ErrNotTaking: the organization is listed, but its node takes no
// referrals now (suspended); the message says why.
var ErrNotTaking = errors.New("not taking referrals")

// Offer is a service an organization offers, as the directory lists it.
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
	// AcceptWithin and CompleteWithin are the service's deadlines: how
	// long a referral may wait to be accepted, then to be completed. The
	// sender keeps them (zero: the sender's default).
	AcceptWithin   Duration `json:"accept_within,omitempty" doc:"How long a referral may wait to be accepted, such as 2h0m0s; the sender escalates after."`
	CompleteWithin Duration `json:"complete_within,omitempty" doc:"How long an accepted referral may take to be completed."`
}

// Duration is a time.Duration written as Go writes it ("2h0m0s").
type Duration time.Duration

// MarshalText writes d as Go writes durations.
func (d Duration) MarshalText() ([]byte, error) { return []byte(time.Duration(d).String()), nil }

// UnmarshalText reads a duration as Go writes it.
func (d *Duration) UnmarshalText(b []byte) error {
	v, err := time.ParseDuration(string(b))
	if err != nil {
		return fmt.Errorf("duration %q: %w", b, err)
	}
	*d = Duration(v)
	return nil
}

// Organization is a place that takes referrals and has caseworkers (a
// polyclinic, a family support centre, a crisis centre), hosted by a node.
// Organizations are data: the node's configuration names them.
type Organization struct {
	// ID is the organization's stable id across the network, one NATS
	// subject token (ValidID), such as kz-almaty-polyclinic-5.
	ID        string   `json:"id" doc:"The organization's id, unique in the network, such as kz-almaty-polyclinic-5: what a referral names in to_org."`
	Name      string   `json:"name" doc:"The organization's name, as people know it."`
	Area      string   `json:"area,omitempty" doc:"Where it works."`
	Languages []string `json:"languages,omitempty" doc:"Languages it works in (ISO 639-1)."`
	Services  []Offer  `json:"services" doc:"The services it offers."`
}

// Offer returns the organization's offer of service.
func (o Organization) Offer(service string) (Offer, bool) {
	for _, x := range o.Services {
		if x.Name == service {
			return x, true
		}
	}
	return Offer{}, false
}

// ServiceNames are the names of the services o offers, in its order.
func (o Organization) ServiceNames() []string {
	out := make([]string, len(o.Services))
	for i, x := range o.Services {
		out[i] = x.Name
	}
	return out
}

// ValidID reports whether id can be an organization's id: one NATS
// subject token of lowercase letters, digits, _ and - (not first), at
// most 64 long, as a node's name.
func ValidID(id string) bool { return bus.ValidNode(id) }

// Listing is one node's entry in the directory.
type Listing struct {
	Node string `json:"node" doc:"The node: one running service, which hosts the organizations below."`
	// Kind is the node's kind (health, education, social, ngo).
	Kind          string         `json:"kind" doc:"The node's kind: health, education, social or ngo."`
	Organizations []Organization `json:"organizations" doc:"The organizations the node hosts, each with its services."`
	// PublicKey is the node's X25519 key (base64) that confidential
	// fields meant for it are sealed to.
	PublicKey string `json:"public_key" doc:"The node's long-term X25519 public key (base64), as the registry holds it (HPKE, RFC 9180)."`
	// DayKey is the node's sealing key of the day (X25519, base64), that
	// referrals' data keys are wrapped to; DayKeyID names it. The node
	// destroys it some time after the next one replaces it.
	DayKey   string `json:"day_key,omitempty" doc:"The node's X25519 sealing key of the day (base64) that referrals' data keys for it are wrapped to (HPKE, RFC 9180); the node destroys it once retired and used up."`
	DayKeyID string `json:"day_key_id,omitempty" doc:"The id of the sealing key of the day."`
	// SigningKey is the nkeys public key of the node's Ed25519 signatures
	// (schemas/SIGNING.md), for operators to compare with their trust
	// anchors; a node that does not sign has none.
	SigningKey string `json:"signing_key,omitempty" doc:"Ed25519 public key (nkeys) that checks this node's event signatures; compare it with your trust anchors (REFBUS_TRUST), which are what receivers check."`
}

// Org returns the organization of the listing with id.
func (l Listing) Org(id string) (Organization, bool) {
	for _, o := range l.Organizations {
		if o.ID == id {
			return o, true
		}
	}
	return Organization{}, false
}

// Hosted is an organization with the listing of the node that hosts it.
type Hosted struct {
	Listing
	Org Organization
}

// Find returns the organization with id among listings, with the listing
// of its node. An id is unique in the network: with a registry, a listing
// that names an organization the registry does not give its node is not
// taken at all (core's listing codec); without one, should two listings
// claim an id, the node whose name sorts first wins.
func Find(listings []Listing, id string) (Hosted, bool) {
	var found Hosted
	ok := false
	for _, l := range listings {
		if o, has := l.Org(id); has && (!ok || l.Node < found.Node) {
			found, ok = Hosted{Listing: l, Org: o}, true
		}
	}
	return found, ok
}

// Directory is a node's view of the directory.
type Directory struct {
	kv   jetstream.KeyValue
	self string
	o    Options

	// mu guards listings, the directory as the watch last saw it, and
	// orgs, its organizations by id (Find over listings).
	mu       sync.Mutex
	listings map[string]Listing
	orgs     map[string]Hosted
	// pubMu guards published, the listing this node last put (as plain
	// JSON, so an unchanged listing is not signed again every tick).
	pubMu     sync.Mutex
	published []byte
}

// Options say how listings are written and read. Without them a listing
// is plain JSON that every node takes as it is: for a network without a
// registry (tests of one node's behaviour).
type Options struct {
	// Encode writes this node's listing as the bucket keeps it (signed).
	Encode func(Listing) ([]byte, error)
	// Decode reads node's listing from the bucket; an error (a listing
	// not signed by the node's registered key, an organization the node
	// does not host) has it ignored, with a log line saying why.
	Decode func(node string, value []byte) (Listing, error)
	// Check, if set, says whether a listed node takes referrals now (a
	// node suspended since its listing was read does not).
	Check  func(node string) error
	Logger *slog.Logger
}

// New is node self's view of the directory in bucket kv.
func New(kv jetstream.KeyValue, self string, o Options) *Directory {
	if o.Encode == nil {
		o.Encode = func(l Listing) ([]byte, error) { return json.Marshal(l) }
	}
	if o.Decode == nil {
		o.Decode = func(_ string, b []byte) (Listing, error) {
			var l Listing
			return l, json.Unmarshal(b, &l)
		}
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	return &Directory{kv: kv, self: self, o: o, listings: map[string]Listing{}, orgs: map[string]Hosted{}}
}

// Publish puts this node's listing into the directory, if it changed
// since the last time.
func (d *Directory) Publish(ctx context.Context, l Listing) error {
	plain, err := json.Marshal(l)
	if err != nil {
		return fmt.Errorf("publish directory: %w", err)
	}
	d.pubMu.Lock()
	defer d.pubMu.Unlock()
	if bytes.Equal(plain, d.published) {
		return nil
	}
	b, err := d.o.Encode(l)
	if err != nil {
		return fmt.Errorf("publish directory: %w", err)
	}
	if _, err := d.kv.Put(ctx, d.self, b); err != nil {
		return fmt.Errorf("publish directory: %w", err)
	}
	d.published = plain
	return nil
}

// Watch keeps the listings at hand until ctx ends.
func (d *Directory) Watch(ctx context.Context) error {
	w, err := d.kv.WatchAll(ctx)
	if ctx.Err() != nil {
		return nil // stopped while it started
	}
	if err != nil {
		return fmt.Errorf("watch directory: %w", err)
	}
	defer func() { _ = w.Stop() }()
	for {
		select {
		case <-ctx.Done():
			return nil
		case e, ok := <-w.Updates():
			if !ok {
				return nil
			}
			if e == nil {
				continue // the initial values are in
			}
			if e.Key() == d.self && e.Operation() != jetstream.KeyValuePut {
				// This node's listing was deleted or purged (by its
				// administrator): the next Publish puts it again.
				d.pubMu.Lock()
				d.published = nil
				d.pubMu.Unlock()
			}
			var l Listing
			var err error
			if e.Operation() == jetstream.KeyValuePut {
				if l, err = d.o.Decode(e.Key(), e.Value()); err != nil {
					d.o.Logger.Warn("directory listing ignored", "listed_node", e.Key(), "err", err)
				}
			}
			d.mu.Lock()
			if e.Operation() != jetstream.KeyValuePut || err != nil {
				delete(d.listings, e.Key())
			} else {
				d.listings[e.Key()] = l
			}
			d.orgs = index(d.listings)
			d.mu.Unlock()
		}
	}
}

// List lists every node's listing, read from the bucket, by node.
func (d *Directory) List(ctx context.Context) ([]Listing, error) {
	keys, err := d.kv.Keys(ctx)
	if errors.Is(err, jetstream.ErrNoKeysFound) {
		return []Listing{}, nil
	}
	if err != nil {
		return nil, fmt.Errorf("list directory: %w", err)
	}
	slices.Sort(keys)
	out := make([]Listing, 0, len(keys))
	for _, k := range keys {
		l, err := d.get(ctx, k)
		if errors.Is(err, ErrNotListed) {
			continue // gone since Keys
		}
		if err != nil {
			return nil, err
		}
		out = append(out, l)
	}
	return out, nil
}

// Lookup is the listing of node: from the watch, or read from the bucket
// before the watch has it. Returns ErrNotListed.
func (d *Directory) Lookup(ctx context.Context, node string) (Listing, error) {
	d.mu.Lock()
	l, ok := d.listings[node]
	d.mu.Unlock()
	if ok {
		return l, nil
	}
	return d.get(ctx, node)
}

func (d *Directory) get(ctx context.Context, node string) (Listing, error) {
	e, err := d.kv.Get(ctx, node)
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return Listing{}, fmt.Errorf("%s: %w", node, ErrNotListed)
	}
	if err != nil {
		return Listing{}, fmt.Errorf("read directory: %w", err)
	}
	l, err := d.o.Decode(node, e.Value())
	if err != nil {
		// Not to be trusted is not to be listed.
		return Listing{}, fmt.Errorf("%s: %w: %w", node, ErrNotListed, err)
	}
	return l, nil
}

// index is the organizations of listings by id, as Find picks them.
func index(listings map[string]Listing) map[string]Hosted {
	out := make(map[string]Hosted, len(listings))
	for _, l := range listings {
		for _, o := range l.Organizations {
			if h, ok := out[o.ID]; !ok || l.Node < h.Node {
				out[o.ID] = Hosted{Listing: l, Org: o}
			}
		}
	}
	return out
}

// Organization is the organization with id and the listing of its node:
// from the watch, or read from the bucket before the watch has it.
// Returns ErrNotListed.
func (d *Directory) Organization(ctx context.Context, id string) (Hosted, error) {
	if h, ok := d.Known(id); ok {
		if d.o.Check != nil {
			if err := d.o.Check(h.Node); err != nil {
				return Hosted{}, fmt.Errorf("organization %s of node %s: %w: %w", id, h.Node, ErrNotTaking, err)
			}
		}
		return h, nil
	}
	ls, err := d.List(ctx)
	if err != nil {
		return Hosted{}, err
	}
	if h, ok := Find(ls, id); ok {
		return h, nil
	}
	return Hosted{}, fmt.Errorf("organization %s: %w", id, ErrNotListed)
}

// Known is the organization with id and the listing of its node, as the
// watch last saw them.
func (d *Directory) Known(id string) (Hosted, bool) {
	d.mu.Lock()
	defer d.mu.Unlock()
	h, ok := d.orgs[id]
	return h, ok
}

// Seen is the listings the watch has seen, by node.
func (d *Directory) Seen() []Listing {
	d.mu.Lock()
	defer d.mu.Unlock()
	out := make([]Listing, 0, len(d.listings))
	for _, l := range d.listings {
		out = append(out, l)
	}
	slices.SortFunc(out, func(a, b Listing) int { return strings.Compare(a.Node, b.Node) })
	return out
}
