// Command agency runs one agency's service against its own Postgres and a
// NATS cluster, as in production:
//
//	DATABASE_URL=postgres://… NATS_URL=nats://… REFBUS_API_KEY=… agency -agency health
package main

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
	"syscall"

	"github.com/danielgtaylor/huma/v2"

	agencysvc "github.com/refbus/refbus/services/internal/agency"
	"github.com/refbus/refbus/services/internal/web"
)

func main() {
	agencysvc.TuneGC()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	log := slog.New(slog.NewJSONHandler(os.Stderr, nil))
	if err := run(ctx, log, os.Args[1:]); err != nil {
		log.Error("agency stopped", "err", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, log *slog.Logger, args []string) error {
	fs := flag.NewFlagSet("agency", flag.ContinueOnError)
	name := fs.String("agency", os.Getenv("REFBUS_AGENCY"), "which agency: health, education, social or ngo (env REFBUS_AGENCY)")
	addr := fs.String("addr", "", "HTTP address (env REFBUS_HTTP_ADDR; default 127.0.0.1:808x)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *name == "" {
		return fmt.Errorf("say which agency with -agency or REFBUS_AGENCY")
	}
	cfg := agencysvc.ConfigFromEnv(*name)
	var err error
	if *addr != "" {
		cfg.HTTPAddr = *addr
	}
	if cfg.Web, err = webFromEnv(log); err != nil {
		return err
	}
	svc, err := agencysvc.New(ctx, cfg, log)
	if err != nil {
		return err
	}
	defer svc.Close()
	log.Info("agency started", "agency", *name, "http", cfg.HTTPAddr)
	return svc.Run(ctx)
}

// webFromEnv mounts the caseworkers' UI and the API's sign-in, configured
// from the environment: REFBUS_API_KEY (hex, at least 32 bytes) signs the
// bearer tokens of the agency's systems, and REFBUS_OIDC_ISSUER,
// REFBUS_OIDC_CLIENT_ID, REFBUS_OIDC_CLIENT_SECRET and
// REFBUS_OIDC_REDIRECT_URL sign people in through the agency's identity
// provider. Without either, nobody could sign in: it refuses to start.
func webFromEnv(log *slog.Logger) (func(context.Context, *agencysvc.Service, huma.API, http.Handler) (http.Handler, error), error) {
	wc := web.Config{Logger: log}
	if k := os.Getenv("REFBUS_API_KEY"); k != "" {
		key, err := hex.DecodeString(k)
		if err != nil || len(key) < 32 {
			return nil, errors.New("REFBUS_API_KEY: want at least 32 bytes in hex (openssl rand -hex 32)")
		}
		wc.APIKey = key
	}
	if iss := os.Getenv("REFBUS_OIDC_ISSUER"); iss != "" {
		wc.OIDC = &web.OIDCConfig{
			Issuer: iss, ClientID: os.Getenv("REFBUS_OIDC_CLIENT_ID"),
			ClientSecret: os.Getenv("REFBUS_OIDC_CLIENT_SECRET"), RedirectURL: os.Getenv("REFBUS_OIDC_REDIRECT_URL"),
		}
		if wc.OIDC.ClientID == "" || wc.OIDC.RedirectURL == "" {
			return nil, errors.New("REFBUS_OIDC_ISSUER is set: set REFBUS_OIDC_CLIENT_ID, REFBUS_OIDC_CLIENT_SECRET and REFBUS_OIDC_REDIRECT_URL (this service's /ui/oidc/callback) too")
		}
	}
	if wc.APIKey == nil && wc.OIDC == nil {
		return nil, errors.New("no way to sign in: set REFBUS_API_KEY (bearer tokens for agency systems) and/or REFBUS_OIDC_ISSUER with its client settings (caseworkers)")
	}
	return web.Mount(wc), nil
}
