package natstest

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/refbus/refbus/pkg/natslocal"
	"github.com/refbus/refbus/pkg/poll"
)

// childEnv tells a re-executed test binary to be a nats-server: its value
// is the natslocal.Options to start it with, in JSON.
const childEnv = "REFBUS_NATSTEST_SERVER"

// childReady is what the child prints once it accepts connections.
const childReady = "natstest: ready"

func init() {
	spec, ok := os.LookupEnv(childEnv)
	if !ok {
		return
	}
	runChild(spec) // never returns
}

// runChild serves as a nats-server until it is killed, or until the test
// process that started it goes (its stdin closes).
func runChild(spec string) {
	var o natslocal.Options
	if err := json.Unmarshal([]byte(spec), &o); err != nil {
		fmt.Fprintf(os.Stderr, "natstest: bad %s=%q: %v\n", childEnv, spec, err)
		os.Exit(2)
	}
	if _, err := natslocal.Start(o); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	fmt.Println(childReady)
	_, _ = io.Copy(io.Discard, os.Stdin)
	os.Exit(0)
}

// Process is a nats-server in a child process of the test, for tests that
// kill the broker for real (SIGKILL): what it had not written to its
// store is lost, as in a crash. The child is the test binary itself,
// started again; it needs nothing from the test's TestMain.
type Process struct {
	t    testing.TB
	opts natslocal.Options
	log  string

	mu    sync.Mutex
	cmd   *exec.Cmd
	stdin io.Closer
}

// NewProcess starts a server in a child process on a free loopback port
// with its store in a temp dir. It is killed when the test ends, even if
// the test failed.
func NewProcess(t testing.TB) *Process {
	t.Helper()
	return newProcess(t, natslocal.Options{Port: freePort(t)})
}

// NewProcessFrom starts a server as NewProcess does, from the nats-server
// configuration file conf (such as operator mode's).
func NewProcessFrom(t testing.TB, conf string) *Process {
	t.Helper()
	return newProcess(t, natslocal.Options{Port: freePort(t), ConfigFile: conf})
}

// newProcess starts a server with o, its store in a temp dir.
func newProcess(t testing.TB, o natslocal.Options) *Process {
	t.Helper()
	dir := t.TempDir()
	o.StoreDir = filepath.Join(dir, "store")
	p := &Process{t: t, opts: o, log: filepath.Join(dir, "server.log")}
	t.Cleanup(p.Kill)
	p.Start()
	return p
}

// freePort is a loopback port no one listens on now.
func freePort(t testing.TB) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("natstest: %v", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// ClientURL is the server's URL, the same across Kill and Start.
func (p *Process) ClientURL() string { return "nats://127.0.0.1:" + strconv.Itoa(p.opts.Port) }

// Name is the server's name, as JetStream reports it (a stream's leader
// and replicas).
func (p *Process) Name() string {
	if p.opts.Name == "" {
		return natslocal.DefaultName
	}
	return p.opts.Name
}

// Start starts the server, on its port and store, and waits until it
// accepts connections. It does nothing if the server runs.
func (p *Process) Start() {
	p.t.Helper()
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.cmd != nil {
		return
	}
	logf, err := os.OpenFile(p.log, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		p.t.Fatalf("natstest: %v", err)
	}
	defer logf.Close()
	// -test.run matches nothing, should the child ever get past init.
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	spec, err := json.Marshal(p.opts)
	if err != nil {
		p.t.Fatalf("natstest: %v", err)
	}
	cmd.Env = append(os.Environ(), childEnv+"="+string(spec))
	cmd.Stderr = logf
	stdin, err := cmd.StdinPipe()
	if err != nil {
		p.t.Fatalf("natstest: %v", err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		p.t.Fatalf("natstest: %v", err)
	}
	if err := cmd.Start(); err != nil {
		p.t.Fatalf("natstest: start server process: %v", err)
	}
	ready := make(chan bool, 1)
	go func() {
		sc := bufio.NewScanner(stdout)
		ok := false
		for sc.Scan() {
			if !ok && sc.Text() == childReady {
				ok = true
				ready <- true
			}
		}
		if !ok {
			ready <- false
		}
	}()
	select {
	case ok := <-ready:
		if !ok {
			_ = cmd.Wait()
			b, _ := os.ReadFile(p.log)
			p.t.Fatalf("natstest: server process ended before it was ready:\n%s", b)
		}
	case <-time.After(30 * time.Second):
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		p.t.Fatal("natstest: server process not ready after 30s")
	}
	p.cmd, p.stdin = cmd, stdin
}

// Kill kills the server with SIGKILL and waits until its process is gone.
// It does nothing if the server is not running.
func (p *Process) Kill() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.cmd == nil {
		return
	}
	_ = p.cmd.Process.Kill()
	_ = p.cmd.Wait()
	_ = p.stdin.Close()
	p.cmd, p.stdin = nil, nil
}

// ProcessCluster is a JetStream cluster of servers in child processes on
// loopback, for tests that kill a server of a cluster for real: each
// server is a Process, with its own ports and store, that the test may
// Kill and Start again.
type ProcessCluster struct {
	// Servers are the servers, named n1, n2, ...
	Servers []*Process
	t       testing.TB
}

// NewProcessCluster starts n servers in child processes, routed to each
// other, and waits until JetStream can place a stream with n replicas.
// They are killed when the test ends, even if it failed.
func NewProcessCluster(t testing.TB, n int) *ProcessCluster {
	t.Helper()
	routePorts := make([]int, n)
	routes := make([]string, n)
	for i := range routePorts {
		routePorts[i] = freePort(t)
		routes[i] = "nats-route://127.0.0.1:" + strconv.Itoa(routePorts[i])
	}
	c := &ProcessCluster{t: t}
	for i := range n {
		c.Servers = append(c.Servers, newProcess(t, natslocal.Options{
			Name: fmt.Sprintf("n%d", i+1), Port: freePort(t),
			Cluster: "refbus-test", ClusterPort: routePorts[i], Routes: routes,
		}))
	}
	poll.Until(t, 30*time.Second, func() error { return c.place(n) })
	return c
}

// place makes a stream with replicas replicas and deletes it again: it
// fails until every server has joined JetStream's cluster.
func (c *ProcessCluster) place(replicas int) error {
	return c.jetStream(func(ctx context.Context, js jetstream.JetStream) error {
		s, err := js.CreateStream(ctx, jetstream.StreamConfig{
			Name: "natstest_probe", Subjects: []string{"natstest.probe"}, Storage: jetstream.MemoryStorage, Replicas: replicas,
		})
		if err != nil {
			return fmt.Errorf("natstest: the cluster cannot place a stream on %d servers yet: %w", replicas, err)
		}
		return js.DeleteStream(ctx, s.CachedInfo().Config.Name)
	})
}

// jetStream calls f with a client of the cluster, connected for the call.
func (c *ProcessCluster) jetStream(f func(context.Context, jetstream.JetStream) error) error {
	nc, err := nats.Connect(c.URLs(), nats.Timeout(2*time.Second))
	if err != nil {
		return fmt.Errorf("natstest: connect to the cluster: %w", err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		return fmt.Errorf("natstest: %w", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	return f(ctx, js)
}

// URLs is the client URL of every server, comma-separated, as
// nats.Connect takes it.
func (c *ProcessCluster) URLs() string {
	urls := make([]string, len(c.Servers))
	for i, p := range c.Servers {
		urls[i] = p.ClientURL()
	}
	return strings.Join(urls, ",")
}

// Server is the server named name, or nil.
func (c *ProcessCluster) Server(name string) *Process {
	for _, p := range c.Servers {
		if p.Name() == name {
			return p
		}
	}
	return nil
}

// StreamLeader is the server that leads stream, as the stream's info
// names it (Cluster.Leader). It returns an error while the stream has no
// leader, as during an election, so a test can poll it.
func (c *ProcessCluster) StreamLeader(stream string) (*Process, error) {
	var leader string
	err := c.jetStream(func(ctx context.Context, js jetstream.JetStream) error {
		s, err := js.Stream(ctx, stream)
		if err != nil {
			return err
		}
		if ci := s.CachedInfo().Cluster; ci != nil {
			leader = ci.Leader
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("natstest: stream %s: %w", stream, err)
	}
	p := c.Server(leader)
	if p == nil {
		return nil, fmt.Errorf("natstest: stream %s has no leader among the servers (%q)", stream, leader)
	}
	return p, nil
}
