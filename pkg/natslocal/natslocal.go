// Package natslocal runs an embedded nats-server with JetStream, for the
// dev stack and for tests. Production uses a real NATS cluster instead.
package natslocal

import (
	"fmt"
	"time"

	"github.com/nats-io/nats-server/v2/server"
)

// Options configures an embedded server.
type Options struct {
	// StoreDir holds the JetStream file store. Required.
	StoreDir string
	// Port on 127.0.0.1; 0 uses the NATS default 4222, -1 picks a free port.
	Port int
	// SyncAlways fsyncs every message (sync_interval: always): slower,
	// but an acknowledged message survives a power cut of this machine.
	SyncAlways bool
	// Logs enables the server's own log on stderr.
	Logs bool
}

// Start starts an embedded server and waits until it accepts connections.
func Start(o Options) (*server.Server, error) {
	if o.StoreDir == "" {
		return nil, fmt.Errorf("start nats: StoreDir is required")
	}
	port := o.Port
	if port == 0 {
		port = 4222
	}
	opts := &server.Options{
		ServerName:         "refbus-embedded",
		Host:               "127.0.0.1",
		Port:               port,
		JetStream:          true,
		StoreDir:           o.StoreDir,
		SyncAlways:         o.SyncAlways,
		NoSigs:             true,
		MaxPayload:         8 << 20,
		JetStreamMaxMemory: 256 << 20,
	}
	srv, err := server.NewServer(opts)
	if err != nil {
		return nil, fmt.Errorf("start nats: %w", err)
	}
	if o.Logs {
		srv.ConfigureLogger()
	}
	srv.Start()
	if !srv.ReadyForConnections(10 * time.Second) {
		srv.Shutdown()
		return nil, fmt.Errorf("start nats: server on 127.0.0.1:%d not ready after 10s", port)
	}
	return srv, nil
}
