package natstest

import (
	"bufio"
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

	"github.com/refbus/refbus/pkg/natslocal"
)

// childEnv tells a re-executed test binary to be a nats-server: its value
// is "<port> <store dir>".
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
	port, dir, _ := strings.Cut(spec, " ")
	p, err := strconv.Atoi(port)
	if err != nil {
		fmt.Fprintf(os.Stderr, "natstest: bad %s=%q\n", childEnv, spec)
		os.Exit(2)
	}
	if _, err := natslocal.Start(natslocal.Options{StoreDir: dir, Port: p}); err != nil {
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
	port int
	dir  string
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
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("natstest: %v", err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	l.Close()
	dir := t.TempDir()
	p := &Process{t: t, port: port, dir: filepath.Join(dir, "store"), log: filepath.Join(dir, "server.log")}
	t.Cleanup(p.Kill)
	p.Start()
	return p
}

// ClientURL is the server's URL, the same across Kill and Start.
func (p *Process) ClientURL() string { return "nats://127.0.0.1:" + strconv.Itoa(p.port) }

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
	cmd.Env = append(os.Environ(), childEnv+"="+strconv.Itoa(p.port)+" "+p.dir)
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
