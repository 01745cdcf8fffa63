// Package natstest gives each test its own nats-server with JetStream:
// embedded in the test process (New), or in child processes
// (NewProcess, NewProcessCluster) for tests that kill a broker for real.
// Only tests import it.
package natstest

import (
	"net"
	"testing"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"

	"github.com/refbus/refbus/pkg/natslocal"
)

// Server is an embedded server private to one test.
type Server struct {
	*server.Server
	t   testing.TB
	dir string
}

// New starts a server on a free loopback port with its store in a temp dir,
// shut down in t.Cleanup.
func New(t testing.TB) *Server {
	t.Helper()
	dir := t.TempDir()
	srv, err := natslocal.Start(natslocal.Options{StoreDir: dir, Port: -1})
	if err != nil {
		t.Fatalf("natstest: %v", err)
	}
	s := &Server{Server: srv, t: t, dir: dir}
	t.Cleanup(func() { s.Server.Shutdown() })
	return s
}

// Restart shuts the server down and starts it again on the same port and
// store, as a broker restart would.
func (s *Server) Restart() {
	s.t.Helper()
	port := s.Server.Addr().(*net.TCPAddr).Port
	s.Server.Shutdown()
	s.Server.WaitForShutdown()
	srv, err := natslocal.Start(natslocal.Options{StoreDir: s.dir, Port: port})
	if err != nil {
		s.t.Fatalf("natstest: restart: %v", err)
	}
	s.Server = srv
}

// Connect opens a client connection closed in t.Cleanup.
func (s *Server) Connect() *nats.Conn {
	s.t.Helper()
	nc, err := nats.Connect(s.ClientURL())
	if err != nil {
		s.t.Fatalf("natstest: connect: %v", err)
	}
	s.t.Cleanup(nc.Close)
	return nc
}
