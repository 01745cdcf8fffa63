package core

import (
	"context"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/danielgtaylor/huma/v2"

	"github.com/refbus/refbus/services/internal/core/api"
	"github.com/refbus/refbus/services/internal/core/app"
	"github.com/refbus/refbus/services/internal/core/kind"
	"github.com/refbus/refbus/services/internal/core/web"
)

// Main is the command of a node of kind k, as production runs it against
// its own Postgres and a NATS cluster:
//
//	DATABASE_URL=postgres://… NATS_URL=nats://… REFBUS_API_KEY=… refbus-ngo
//
// Its settings come from the environment (ConfigFromEnv) and its flags.
func Main(k kind.Kind) {
	TuneGC()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	log := slog.New(slog.NewJSONHandler(os.Stderr, nil))
	if err := run(ctx, log, k, os.Args[1:]); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return
		}
		log.Error("node stopped", "kind", k.Name(), "err", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, log *slog.Logger, k kind.Kind, args []string) error {
	fs := flag.NewFlagSet("refbus-"+k.Name(), flag.ContinueOnError)
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), `refbus-%s runs a %s node of a refbus network.

Settings, from the environment:
  DATABASE_URL         the node's own Postgres database (required)
  NATS_URL             the NATS cluster (default nats://127.0.0.1:4222); NATS_CREDS a credentials file
  REFBUS_NODE          the node's name on the bus (default %s)
  REFBUS_HTTP_ADDR     where the API and the UI listen (default 127.0.0.1:8080)
  REFBUS_API_KEY       hex, 32 bytes or more: signs the bearer tokens of the node's systems
  REFBUS_TOKEN_MAX_TTL the longest a bearer token may be valid for (default 2160h, 90 days)
  REFBUS_OIDC_ISSUER, REFBUS_OIDC_CLIENT_ID, REFBUS_OIDC_CLIENT_SECRET, REFBUS_OIDC_REDIRECT_URL
                       sign caseworkers in through the organization's identity provider
  REFBUS_NETWORK_KEY   hex: the network's key for person pseudonyms
  REFBUS_SIGNING_SEED  the node's nkeys seed (required, as REFBUS_ANCHOR or REFBUS_TRUST, unless -dev-unsigned)
  REFBUS_ANCHOR        the network's public key: the registry it signs says whom to trust
  REFBUS_TRUST         instead, a fixed list of the nodes' keys (node=KEY,...)
  REFBUS_SLAS          deadlines by service (crisis_shelter=2h/4392h,default=72h/0)
  REFBUS_COORDINATOR   the node that sees every overdue referral

A key may be kept out of the environment: REFBUS_SIGNING_SEED_FILE,
REFBUS_SEALING_KEY_FILE, REFBUS_NETWORK_KEY_FILE, REFBUS_API_KEY_FILE and
REFBUS_OIDC_CLIENT_SECRET_FILE name a file (mode 600) that holds it.

Flags:
`, k.Name(), k.Name(), k.Name())
		fs.PrintDefaults()
	}
	addr := fs.String("addr", "", "HTTP address (overrides REFBUS_HTTP_ADDR)")
	devUnsigned := fs.Bool("dev-unsigned", false, "run without a signing seed or trust anchor, for development only: what the node sends goes unsigned and what it receives is not checked")
	if err := fs.Parse(args); err != nil {
		return err
	}
	cfg := ConfigFromEnv(k.Name())
	if *addr != "" {
		cfg.HTTPAddr = *addr
	}
	if err := requireSigned(cfg, *devUnsigned); err != nil {
		return err
	}
	if *devUnsigned {
		log.Warn("running UNSIGNED for development (-dev-unsigned): events go unsigned and others' are taken unchecked; never in production")
	}
	var err error
	if cfg.Web, err = webFromEnv(log); err != nil {
		return err
	}
	n, err := New(ctx, cfg, k, log)
	if err != nil {
		return err
	}
	defer n.Close()
	log.Info("node started", "node", n.Name(), "kind", k.Name(), "http", cfg.HTTPAddr)
	return n.Run(ctx)
}

// requireSigned refuses a node that would send unsigned events or take
// others' unchecked: without a signing seed, or without the network's
// anchor (REFBUS_ANCHOR) or a fixed list of trust anchors (REFBUS_TRUST).
// dev (-dev-unsigned) lets it run so for development.
func requireSigned(c Config, dev bool) error {
	if len(c.errs) > 0 {
		return fmt.Errorf("%s: %w", c.Node, c.errs[0])
	}
	var missing []string
	if len(c.SigningSeed) == 0 {
		missing = append(missing, "signing seed (REFBUS_SIGNING_SEED)")
	}
	if c.Anchor == "" && len(c.Trust) == 0 {
		missing = append(missing, "trust anchor (REFBUS_ANCHOR, the network's key; or REFBUS_TRUST)")
	}
	if len(missing) == 0 || dev {
		return nil
	}
	return fmt.Errorf("the node has no %s: a node signs what it sends and checks what it receives; start it with its bundle from refbus-admin node add (node.env), or with -dev-unsigned for development", strings.Join(missing, " and no "))
}

// webFromEnv mounts the caseworkers' UI and the API's sign-in, configured
// from the environment: REFBUS_API_KEY (hex, at least 32 bytes) signs the
// bearer tokens of the node's systems, and REFBUS_OIDC_ISSUER,
// REFBUS_OIDC_CLIENT_ID, REFBUS_OIDC_CLIENT_SECRET and
// REFBUS_OIDC_REDIRECT_URL sign people in through the organization's
// identity provider. Without either, nobody could sign in: it refuses to
// start.
func webFromEnv(log *slog.Logger) (func(context.Context, *app.App, api.Ops, huma.API, http.Handler) (http.Handler, error), error) {
	wc := web.Config{Logger: log, Lang: os.Getenv("REFBUS_LANGUAGE")}
	if tz := os.Getenv("REFBUS_TIME_ZONE"); tz != "" {
		loc, err := time.LoadLocation(tz)
		if err != nil {
			return nil, fmt.Errorf("REFBUS_TIME_ZONE %q: %w", tz, err)
		}
		wc.Location = loc
	}
	if v := os.Getenv("REFBUS_TOKEN_MAX_TTL"); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil || d <= 0 {
			return nil, fmt.Errorf("REFBUS_TOKEN_MAX_TTL %q: want a duration such as 720h", v)
		}
		wc.TokenMaxTTL = d
	}
	apiKey, err := Secret(os.Getenv, "REFBUS_API_KEY")
	if err != nil {
		return nil, err
	}
	if k := apiKey; k != "" {
		key, err := hex.DecodeString(k)
		if err != nil || len(key) < 32 {
			return nil, errors.New("REFBUS_API_KEY: want at least 32 bytes in hex (openssl rand -hex 32)")
		}
		wc.APIKey = key
	}
	if iss := os.Getenv("REFBUS_OIDC_ISSUER"); iss != "" {
		wc.OIDC = &web.OIDCConfig{
			Issuer: iss, ClientID: os.Getenv("REFBUS_OIDC_CLIENT_ID"),
			RedirectURL: os.Getenv("REFBUS_OIDC_REDIRECT_URL"),
		}
		if wc.OIDC.ClientSecret, err = Secret(os.Getenv, "REFBUS_OIDC_CLIENT_SECRET"); err != nil {
			return nil, err
		}
		if wc.OIDC.ClientID == "" || wc.OIDC.RedirectURL == "" {
			return nil, errors.New("REFBUS_OIDC_ISSUER is set: set REFBUS_OIDC_CLIENT_ID, REFBUS_OIDC_CLIENT_SECRET and REFBUS_OIDC_REDIRECT_URL (this node's /ui/oidc/callback) too")
		}
	}
	if wc.APIKey == nil && wc.OIDC == nil {
		return nil, errors.New("no way to sign in: set REFBUS_API_KEY (bearer tokens for the node's systems) and/or REFBUS_OIDC_ISSUER with its client settings (caseworkers)")
	}
	return web.Mount(wc), nil
}
