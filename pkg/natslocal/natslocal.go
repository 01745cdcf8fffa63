// Package natslocal runs an embedded nats-server with JetStream, for the
// dev stack and for tests. Production uses a real NATS cluster instead.
package natslocal

import (
	"fmt"
	"strings"
	"time"

	"github.com/nats-io/nats-server/v2/server"
)

// DefaultName is the name of a server started without one.
const DefaultName = "refbus-embedded"

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
	// Name is the server's name (default DefaultName); the servers of
	// a cluster need names of their own.
	Name string
	// Cluster, if not empty, joins the server to the cluster of that
	// name: it takes routes on 127.0.0.1:ClusterPort and connects to
	// Routes (nats-route://host:port; its own address may be among them).
	Cluster     string
	ClusterPort int
	Routes      []string
	// StoreKey, if set, encrypts the JetStream store with it (ChaCha20-
	// Poly1305, nats-server's cipher): the files on disk are unreadable
	// without it. A store written without it is encrypted when it is
	// first opened with one.
	StoreKey string
	// ConfigFile, if set, is a nats-server configuration to start from,
	// such as operator mode (its operator, system account and account
	// resolver); the fields above set the address and the store over it.
	ConfigFile string
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
	name := o.Name
	if name == "" {
		name = DefaultName
	}
	opts := &server.Options{}
	if o.ConfigFile != "" {
		var err error
		if opts, err = server.ProcessConfigFile(o.ConfigFile); err != nil {
			return nil, fmt.Errorf("start nats: %w", err)
		}
	}
	opts.ServerName, opts.Host, opts.Port = name, "127.0.0.1", port
	opts.JetStream, opts.StoreDir, opts.SyncAlways = true, o.StoreDir, o.SyncAlways
	opts.NoSigs, opts.MaxPayload, opts.JetStreamMaxMemory = true, 8<<20, 256<<20
	if o.StoreKey != "" {
		opts.JetStreamKey, opts.JetStreamCipher = o.StoreKey, server.ChaCha
	}
	if o.Cluster != "" {
		opts.Cluster = server.ClusterOpts{Name: o.Cluster, Host: "127.0.0.1", Port: o.ClusterPort}
		opts.Routes = server.RoutesFromStr(strings.Join(o.Routes, ","))
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
