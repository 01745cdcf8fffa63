package core

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/danielgtaylor/huma/v2"

	"github.com/refbus/refbus/pkg/bus"
	"github.com/refbus/refbus/pkg/event"
	"github.com/refbus/refbus/pkg/inbox"
	"github.com/refbus/refbus/pkg/outbox"
	"github.com/refbus/refbus/pkg/person"
	"github.com/refbus/refbus/services/internal/core/api"
	"github.com/refbus/refbus/services/internal/core/app"
	"github.com/refbus/refbus/services/internal/core/directory"
)

// Config is everything a node needs to run.
type Config struct {
	// Node is the node's name on the bus: one subject token, such as
	// health or ngo_nur (default: its kind's name).
	Node string
	// HTTPAddr is where the API and the UI listen; empty serves no HTTP
	// (tests use Handler).
	HTTPAddr string
	// DatabaseURL is the node's own Postgres database.
	DatabaseURL string
	// NATSURL and NATSCreds reach the NATS cluster; NATSCreds is a
	// credentials file, empty on the embedded default.
	NATSURL   string
	NATSCreds string
	// MaxConns bounds the Postgres pool (default 16).
	MaxConns int32
	// NetworkKey is the secret all nodes share to turn national ids into
	// matching pseudonyms (at least 32 bytes). Without it the node refuses
	// person ids.
	NetworkKey []byte `json:"-"`
	// SigningSeed is the node's nkeys seed: its events and receipts are
	// signed with it (schemas/SIGNING.md); empty sends them unsigned.
	SigningSeed []byte `json:"-"`
	// Trust are the nodes' public keys (trust anchors); when set, an event
	// not signed with its sender's key is rejected. A node with an Anchor
	// trusts the registry instead.
	Trust event.Trust
	// Anchor is the network's public key (an nkeys account key): the one
	// trust anchor of a node in a network its administrator runs. With
	// it, the node reads the registry signed with that key, trusts the
	// keys and organizations it holds, signs its own listing and checks
	// the others'; it requires SigningSeed and SealingKey.
	Anchor string
	// Country is the network's country (REFBUS_COUNTRY: KZ or KG): the
	// national id a person_id must be (an IIN, a PIN); empty takes either.
	Country person.Country
	// SealingKey is the node's X25519 private key for data sealed to it,
	// issued with the node; empty keeps one the node makes in its store.
	SealingKey []byte `json:"-"`

	// Organizations are the organizations the node hosts, each with the
	// services it offers; the first is the node's default (a referral
	// that names no organization is for it). Default: with an Anchor,
	// those the registry gives the node, each named by its id and
	// offering the kind's services; without, one organization whose id
	// and name are the node's name, offering its kind's services. An id is one subject token (directory.ValidID), unique
	// in the network; a service that takes people in (Beds) is offered
	// by one organization of the node at most.
	Organizations []directory.Organization
	// SLAs are deadlines by service over those the directory lists; the
	// "" entry applies to services with none (ParseSLAs).
	SLAs map[string]app.SLA
	// Coordinator is the node that sees every overdue referral; none if
	// empty.
	Coordinator string
	// Now is the clock of consents and deadlines (default time.Now).
	Now func() time.Time
	// SLATick is how often due deadlines are looked for (default 1s).
	SLATick time.Duration
	// DirectoryTick is how often the listing is refreshed (default 1s).
	DirectoryTick time.Duration
	// Web, if set, wraps the HTTP API in the caseworker UI and its sign-in
	// (package web's Mount); without it the API is open. ops are the
	// node's operators' commands (its dead letters), for the UI too.
	Web func(ctx context.Context, a *app.App, ops api.Ops, doc huma.API, next http.Handler) (http.Handler, error)

	Stream   bus.StreamConfig
	Consumer bus.ConsumerConfig
	Relay    outbox.RelayOptions
	Inbox    inbox.Options

	// errs are what ConfigFromEnv could not read, reported by New.
	errs []error
}

// ConfigFromEnv reads a node's settings from the environment:
// REFBUS_NODE, REFBUS_HTTP_ADDR, DATABASE_URL, NATS_URL, NATS_CREDS,
// REFBUS_NETWORK_KEY (hex), REFBUS_SIGNING_SEED (an nkeys seed),
// REFBUS_TRUST (node=PUBLICKEY,...), REFBUS_ANCHOR (the network's public
// key), REFBUS_SEALING_KEY (base64), REFBUS_SLAS, REFBUS_COORDINATOR and
// REFBUS_ORGS, the path of a JSON file of the organizations the node
// hosts (ReadOrganizations).
func ConfigFromEnv(kindName string) Config { return ConfigFrom(os.Getenv, kindName) }

// ConfigFrom reads a node's settings as ConfigFromEnv does, through
// getenv (such as a bundle's node.env).
func ConfigFrom(getenv func(string) string, kindName string) Config {
	c := Config{
		Node:        getenv("REFBUS_NODE"),
		HTTPAddr:    getenv("REFBUS_HTTP_ADDR"),
		DatabaseURL: getenv("DATABASE_URL"),
		NATSURL:     getenv("NATS_URL"),
		NATSCreds:   getenv("NATS_CREDS"),
		Coordinator: getenv("REFBUS_COORDINATOR"),
		Anchor:      getenv("REFBUS_ANCHOR"),
		Country:     person.Country(strings.ToUpper(getenv("REFBUS_COUNTRY"))),
	}
	secret := func(name string) string {
		v, err := Secret(getenv, name)
		if err != nil {
			c.errs = append(c.errs, err)
		}
		return v
	}
	if k := secret("REFBUS_SEALING_KEY"); k != "" {
		var err error
		if c.SealingKey, err = base64.StdEncoding.DecodeString(k); err != nil {
			c.errs = append(c.errs, fmt.Errorf("REFBUS_SEALING_KEY: not base64: %w", err))
		}
	}
	if c.Node == "" {
		c.Node = kindName
	}
	if k, err := hex.DecodeString(secret("REFBUS_NETWORK_KEY")); err == nil {
		c.NetworkKey = k
	}
	if seed := secret("REFBUS_SIGNING_SEED"); seed != "" {
		c.SigningSeed = []byte(seed)
	}
	if t := getenv("REFBUS_TRUST"); t != "" {
		var err error
		if c.Trust, err = event.ParseTrust(t); err != nil {
			c.errs = append(c.errs, fmt.Errorf("REFBUS_TRUST: %w", err))
		}
	}
	if v := getenv("REFBUS_SLAS"); v != "" {
		var err error
		if c.SLAs, err = ParseSLAs(v); err != nil {
			c.errs = append(c.errs, fmt.Errorf("REFBUS_SLAS: %w", err))
		}
	}
	if path := getenv("REFBUS_ORGS"); path != "" {
		var err error
		if c.Organizations, err = ReadOrganizations(path); err != nil {
			c.errs = append(c.errs, fmt.Errorf("REFBUS_ORGS: %w", err))
		}
	}
	if c.HTTPAddr == "" {
		c.HTTPAddr = "127.0.0.1:8080"
	}
	if c.NATSURL == "" {
		c.NATSURL = "nats://127.0.0.1:4222"
	}
	return c
}

// Secret is the setting name: the contents of the file that name_FILE
// names, if set (a key kept out of the environment, in a file only its
// owner may read), else the variable itself. A file that others may read
// is refused.
func Secret(getenv func(string) string, name string) (string, error) {
	path := getenv(name + "_FILE")
	if path == "" {
		return getenv(name), nil
	}
	fi, err := os.Stat(path)
	if err != nil {
		return "", fmt.Errorf("%s_FILE: %w", name, err)
	}
	if fi.Mode().Perm()&0o077 != 0 {
		return "", fmt.Errorf("%s_FILE: %s may be read by others (mode %v): chmod 600 %s", name, path, fi.Mode().Perm(), path)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return "", fmt.Errorf("%s_FILE: %w", name, err)
	}
	return strings.TrimSpace(string(b)), nil
}

// check fills in the defaults and says what is wrong.
func (c *Config) check(kindOffers []directory.Offer) error {
	if len(c.errs) > 0 {
		return fmt.Errorf("%s: %w", c.Node, c.errs[0])
	}
	if !bus.ValidNode(c.Node) {
		return fmt.Errorf("node name %q (REFBUS_NODE): use lowercase letters, digits, _ and -, such as health or ngo_nur", c.Node)
	}
	if c.DatabaseURL == "" {
		return fmt.Errorf("%s: DATABASE_URL is required", c.Node)
	}
	if c.NATSURL == "" {
		return fmt.Errorf("%s: NATS_URL is required", c.Node)
	}
	if c.Country != "" && c.Country != person.KZ && c.Country != person.KG {
		return fmt.Errorf("%s: country %q (REFBUS_COUNTRY): KZ or KG", c.Node, c.Country)
	}
	if c.Coordinator != "" && !bus.ValidNode(c.Coordinator) {
		return fmt.Errorf("%s: coordinator %q (REFBUS_COORDINATOR) is not a node name", c.Node, c.Coordinator)
	}
	if len(c.SigningSeed) > 0 {
		// The relay's chain and the receipts' are apart: two signers.
		for _, s := range []**event.Signer{&c.Relay.Signer, &c.Inbox.Signer} {
			signer, err := event.NewSigner(c.SigningSeed)
			if err != nil {
				return fmt.Errorf("%s: %w", c.Node, err)
			}
			*s = signer
		}
	}
	if c.Anchor != "" && (len(c.SigningSeed) == 0 || c.SealingKey == nil) {
		return fmt.Errorf("%s: a node of a network with a registry (REFBUS_ANCHOR) needs its signing seed (REFBUS_SIGNING_SEED) and sealing key (REFBUS_SEALING_KEY) from its bundle (refbus-admin node add)", c.Node)
	}
	if c.Trust != nil {
		c.Inbox.Trust = c.Trust
	}
	if c.MaxConns == 0 {
		c.MaxConns = 16
	}
	if len(c.Organizations) == 0 {
		if c.Anchor != "" {
			return nil // the registry says which the node hosts (openRegistry)
		}
		c.Organizations = []directory.Organization{{ID: c.Node, Name: c.Node, Services: kindOffers}}
	}
	if err := checkOrganizations(c.Organizations); err != nil {
		return fmt.Errorf("%s: organizations (REFBUS_ORGS): %w", c.Node, err)
	}
	return nil
}

// ReadOrganizations reads the organizations a node hosts from the JSON
// file at path: an array of objects as the directory lists them, such as
//
//	[{"id": "kz-almaty-polyclinic-5", "name": "Almaty polyclinic No. 5",
//	  "area": "Almaty", "languages": ["kk", "ru"],
//	  "services": [{"name": "child_health_check", "title": "Pediatric check of a child",
//	                "eligibility": "children 0-18", "languages": ["kk", "ru"], "area": "Almaty",
//	                "accept_within": "72h"}]}]
//
// (an offer's fields are directory.Offer's; "beds" for a service that
// takes people in). New checks what it says.
func ReadOrganizations(path string) ([]directory.Organization, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	var orgs []directory.Organization
	if err := dec.Decode(&orgs); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return orgs, nil
}

// checkOrganizations says what is wrong with a node's organizations.
func checkOrganizations(orgs []directory.Organization) error {
	ids := map[string]bool{}
	beds := map[string]string{}
	for i := range orgs {
		o := &orgs[i]
		switch {
		case !directory.ValidID(o.ID):
			return fmt.Errorf("id %q: use one token of lowercase letters, digits, _ and -, such as kz-almaty-polyclinic-5", o.ID)
		case ids[o.ID]:
			return fmt.Errorf("id %s is given twice", o.ID)
		case strings.TrimSpace(o.Name) == "":
			return fmt.Errorf("%s has no name", o.ID)
		}
		ids[o.ID] = true
		if o.Services == nil {
			o.Services = []directory.Offer{} // an organization that only refers
		}
		names := map[string]bool{}
		for _, s := range o.Services {
			switch {
			case strings.TrimSpace(s.Name) == "":
				return fmt.Errorf("%s offers a service with no name", o.ID)
			case names[s.Name]:
				return fmt.Errorf("%s offers the service %s twice", o.ID, s.Name)
			case s.Beds > 0 && beds[s.Name] != "":
				// A kind counts the places of a node by service.
				return fmt.Errorf("%s and %s both offer %s, which takes people in: one organization of a node at most may", beds[s.Name], o.ID, s.Name)
			}
			names[s.Name] = true
			if s.Beds > 0 {
				beds[s.Name] = o.ID
			}
		}
	}
	return nil
}

// signingKey is the public key of SigningSeed, this node's trust anchor
// for the others ("" without a seed).
func (c *Config) signingKey() string {
	if c.Relay.Signer == nil {
		return ""
	}
	return c.Relay.Signer.PublicKey()
}

// ParseSLAs reads deadlines per service from
// "service=accept/complete,...", durations as Go writes them ("2h",
// "240h"; "0" for none); the service "default" sets the deadlines of
// services with none. For example "crisis_shelter=2h/4392h,legal_help=48h/0".
func ParseSLAs(v string) (map[string]app.SLA, error) {
	out := map[string]app.SLA{}
	for entry := range strings.SplitSeq(v, ",") {
		entry = strings.TrimSpace(entry)
		if entry == "" {
			continue
		}
		name, times, ok := strings.Cut(entry, "=")
		accept, complete, ok2 := strings.Cut(times, "/")
		if !ok || !ok2 || name == "" {
			return nil, fmt.Errorf("%q: want service=accept/complete, such as crisis_shelter=2h/4392h", entry)
		}
		var sla app.SLA
		var err error
		if sla.Accept, err = time.ParseDuration(accept); err != nil || sla.Accept < 0 {
			return nil, fmt.Errorf("%q: accept deadline %q: want a duration such as 2h or 240h", entry, accept)
		}
		if sla.Complete, err = time.ParseDuration(complete); err != nil || sla.Complete < 0 {
			return nil, fmt.Errorf("%q: completion deadline %q: want a duration such as 720h, or 0 for none", entry, complete)
		}
		if name == "default" {
			name = ""
		}
		out[name] = sla
	}
	return out, nil
}
