// Package natstest gives each test its own nats-server with JetStream:
// embedded in the test process (New, NewCluster), or in child processes
// (NewProcess, NewProcessCluster) for tests that kill a broker for real.
// Only tests import it.
package natstest

import (
	"errors"
	"fmt"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"

	"github.com/refbus/refbus/pkg/natslocal"
	"github.com/refbus/refbus/pkg/poll"
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

// Cluster is a NATS cluster of in-process servers, private to one test.
type Cluster struct {
	Servers []*server.Server
}

// NewCluster starts n servers clustered with JetStream on loopback, waits
// until JetStream has a leader, and shuts them down in t.Cleanup.
func NewCluster(t testing.TB, n int) *Cluster {
	t.Helper()
	ports := make([]int, n)
	var routes []string
	for i := range ports {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		ports[i] = l.Addr().(*net.TCPAddr).Port
		l.Close()
		routes = append(routes, fmt.Sprintf("nats-route://127.0.0.1:%d", ports[i]))
	}
	c := &Cluster{}
	for i := range n {
		opts := &server.Options{
			ServerName: fmt.Sprintf("n%d", i+1),
			Host:       "127.0.0.1",
			Port:       -1,
			JetStream:  true,
			StoreDir:   t.TempDir(),
			NoSigs:     true,
			Cluster:    server.ClusterOpts{Name: "refbus-test", Host: "127.0.0.1", Port: ports[i]},
			Routes:     server.RoutesFromStr(strings.Join(routes, ",")),
		}
		srv, err := server.NewServer(opts)
		if err != nil {
			t.Fatalf("natstest: cluster node %d: %v", i+1, err)
		}
		srv.Start()
		t.Cleanup(srv.Shutdown)
		c.Servers = append(c.Servers, srv)
	}
	for i, s := range c.Servers {
		if !s.ReadyForConnections(10 * time.Second) {
			t.Fatalf("natstest: cluster node %d not ready", i+1)
		}
	}
	poll.Until(t, 30*time.Second, func() error {
		if !c.hasLeader() {
			return errors.New("natstest: the cluster has no JetStream leader")
		}
		return nil
	})
	return c
}

func (c *Cluster) hasLeader() bool {
	for _, s := range c.Servers {
		if s.JetStreamIsLeader() {
			return true
		}
	}
	return false
}

// URLs is the client URL of every node, comma-separated, as nats.Connect
// takes it.
func (c *Cluster) URLs() string {
	var urls []string
	for _, s := range c.Servers {
		urls = append(urls, s.ClientURL())
	}
	return strings.Join(urls, ",")
}
