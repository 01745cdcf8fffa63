package agency

import (
	"context"
	"encoding/hex"
	"fmt"
	"maps"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/danielgtaylor/huma/v2"

	"github.com/refbus/refbus/pkg/bus"
	"github.com/refbus/refbus/pkg/event"
	"github.com/refbus/refbus/pkg/inbox"
	"github.com/refbus/refbus/pkg/outbox"
)

// Config is everything an agency service needs to run.
type Config struct {
	// Agency is which agency this service is: health, education, social
	// or ngo.
	Agency string
	// HTTPAddr is where the API listens; empty serves no HTTP (tests use
	// Handler directly).
	HTTPAddr string
	// DatabaseURL is the agency's own Postgres database.
	DatabaseURL string
	// NATSURL and NATSCreds reach the NATS cluster; NATSCreds is a
	// credentials file, empty on the embedded default.
	NATSURL   string
	NATSCreds string
	// MaxConns bounds the Postgres pool (default 16).
	MaxConns int32
	// NetworkKey is the secret all agencies share to turn national ids
	// into matching pseudonyms (at least 32 bytes). Without it the service
	// refuses person ids.
	NetworkKey []byte `json:"-"`
	// SigningSeed is the agency's nkeys seed: its events and receipts are
	// signed with it (schemas/SIGNING.md); empty sends them unsigned.
	SigningSeed []byte `json:"-"`
	// Trust are the agencies' public keys (trust anchors); when set, an
	// event not signed with its sender's key is rejected.
	Trust    event.Trust
	trustErr error
	slaErr   error

	// SLAs are the deadlines per service (default DefaultSLAs); the ""
	// entry applies to services not named.
	SLAs map[string]SLA
	// Coordinator is the agency that sees every overdue referral (default
	// social).
	Coordinator string
	// Now is the clock of the deadlines (default time.Now); tests move it.
	Now func() time.Time
	// SLATick is how often due deadlines are looked for (default 1s).
	SLATick time.Duration

	// Services are what the agency offers, published to the directory at
	// start (default DefaultDirectory[Agency]).
	Services []Offer
	// DirectoryTick is how often the directory listing is refreshed with
	// the free places (default 1s); it is published only when it changed.
	DirectoryTick time.Duration
	// Web, if set, wraps the HTTP API in the caseworker UI and its sign-in
	// (services/internal/web.Mount); without it the API is open.
	Web func(ctx context.Context, s *Service, api huma.API, next http.Handler) (http.Handler, error)

	Stream   bus.StreamConfig
	Consumer bus.ConsumerConfig
	Relay    outbox.RelayOptions
	Inbox    inbox.Options
}

// DefaultPort is the HTTP port of each agency on the embedded default.
var DefaultPort = map[string]int{"health": 8081, "education": 8082, "social": 8083, "ngo": 8084}

// ConfigFromEnv reads the settings of agency from the environment:
// REFBUS_HTTP_ADDR, DATABASE_URL, NATS_URL, NATS_CREDS, REFBUS_NETWORK_KEY
// (hex), REFBUS_SIGNING_SEED (an nkeys seed) and REFBUS_TRUST
// (agency=PUBLICKEY,...).
func ConfigFromEnv(agency string) Config {
	c := Config{
		Agency:      agency,
		HTTPAddr:    os.Getenv("REFBUS_HTTP_ADDR"),
		DatabaseURL: os.Getenv("DATABASE_URL"),
		NATSURL:     os.Getenv("NATS_URL"),
		NATSCreds:   os.Getenv("NATS_CREDS"),
	}
	if k, err := hex.DecodeString(os.Getenv("REFBUS_NETWORK_KEY")); err == nil {
		c.NetworkKey = k
	}
	if seed := os.Getenv("REFBUS_SIGNING_SEED"); seed != "" {
		c.SigningSeed = []byte(seed)
	}
	if t := os.Getenv("REFBUS_TRUST"); t != "" {
		c.Trust, c.trustErr = event.ParseTrust(t)
	}
	if v := os.Getenv("REFBUS_SLAS"); v != "" {
		c.SLAs, c.slaErr = ParseSLAs(v)
	}
	c.Coordinator = os.Getenv("REFBUS_COORDINATOR")
	if c.HTTPAddr == "" {
		c.HTTPAddr = fmt.Sprintf("127.0.0.1:%d", DefaultPort[agency])
	}
	if c.NATSURL == "" {
		c.NATSURL = "nats://127.0.0.1:4222"
	}
	return c
}

func (c *Config) check() error {
	if !bus.KnownAgency(c.Agency) {
		return fmt.Errorf("agency %q is not one of %v", c.Agency, bus.Agencies)
	}
	if c.DatabaseURL == "" {
		return fmt.Errorf("%s: DATABASE_URL is required", c.Agency)
	}
	if c.NATSURL == "" {
		return fmt.Errorf("%s: NATS_URL is required", c.Agency)
	}
	if c.slaErr != nil {
		return fmt.Errorf("%s: REFBUS_SLAS: %w", c.Agency, c.slaErr)
	}
	if c.Coordinator != "" && !bus.KnownAgency(c.Coordinator) {
		return fmt.Errorf("%s: coordinator %q (REFBUS_COORDINATOR) is not one of %v", c.Agency, c.Coordinator, bus.Agencies)
	}
	if c.trustErr != nil {
		return fmt.Errorf("%s: REFBUS_TRUST: %w", c.Agency, c.trustErr)
	}
	if len(c.SigningSeed) > 0 {
		// The relay's chain and the receipts' are apart: two signers.
		for _, s := range []**event.Signer{&c.Relay.Signer, &c.Inbox.Signer} {
			signer, err := event.NewSigner(c.SigningSeed)
			if err != nil {
				return fmt.Errorf("%s: %w", c.Agency, err)
			}
			*s = signer
		}
	}
	if c.Trust != nil {
		c.Inbox.Trust = c.Trust
	}
	if c.MaxConns == 0 {
		c.MaxConns = 16
	}
	if c.SLAs == nil {
		c.SLAs = DefaultSLAs
	}
	if c.Coordinator == "" {
		c.Coordinator = "social"
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	if c.Services == nil {
		c.Services = DefaultDirectory[c.Agency]
	}
	if c.DirectoryTick == 0 {
		c.DirectoryTick = time.Second
	}
	if c.SLATick == 0 {
		c.SLATick = time.Second
	}
	return nil
}

// shutdownGrace bounds how long the HTTP server waits for requests in
// flight when the service stops.
const shutdownGrace = 5 * time.Second

// SigningKey is the public key of SigningSeed, this agency's trust anchor
// for the others ("" without a seed).
func (c *Config) SigningKey() (string, error) {
	if len(c.SigningSeed) == 0 {
		return "", nil
	}
	s, err := event.NewSigner(c.SigningSeed)
	if err != nil {
		return "", err
	}
	return s.PublicKey(), nil
}

// ParseSLAs reads deadlines per service from
// "service=accept/complete,...", durations as Go writes them ("2h",
// "240h"; "0" for none), over the defaults (DefaultSLAs); the service
// "default" sets the deadlines of services not named. For example
// "crisis_shelter=2h/4392h,legal_help=48h/0".
func ParseSLAs(v string) (map[string]SLA, error) {
	out := maps.Clone(DefaultSLAs)
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
		var sla SLA
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
