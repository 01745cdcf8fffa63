// Command agency runs one agency's service against its own Postgres and a
// NATS cluster, as in production:
//
//	DATABASE_URL=postgres://… NATS_URL=nats://… agency -agency health
package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	agencysvc "github.com/refbus/refbus/services/internal/agency"
)

func main() {
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
	if *addr != "" {
		cfg.HTTPAddr = *addr
	}
	svc, err := agencysvc.New(ctx, cfg, log)
	if err != nil {
		return err
	}
	defer svc.Close()
	log.Info("agency started", "agency", *name, "http", cfg.HTTPAddr)
	return svc.Run(ctx)
}
