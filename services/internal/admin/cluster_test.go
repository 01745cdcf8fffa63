package admin_test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/refbus/refbus/pkg/bus"
	"github.com/refbus/refbus/pkg/natslocal"
	"github.com/refbus/refbus/pkg/poll"
	"github.com/refbus/refbus/services/internal/admin"
	"github.com/refbus/refbus/services/internal/network"
)

// On a cluster of three servers in operator mode, the administrator talks
// to one of them: a node suspended there is cut off at all three (its
// connections closed, a new one refused), and comes back at all three
// when it is resumed; the stream it made has three replicas.
func TestSuspensionReachesEveryServerOfACluster(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	adm, err := admin.Init(filepath.Join(dir, "admin"), "refbus-test")
	if err != nil {
		t.Fatal(err)
	}
	netw, err := adm.CreateNetwork("kz", admin.Settings{Country: "KZ", Stream: bus.StreamConfig{Replicas: 3}})
	if err != nil {
		t.Fatal(err)
	}
	routes := make([]string, 3)
	ports := make([]int, 3)
	for i := range routes {
		ports[i] = freePort(t)
		routes[i] = "nats-route://127.0.0.1:" + strconv.Itoa(freePort(t))
	}
	servers := make([]*server.Server, 3)
	urls := make([]string, 3)
	for i := range servers {
		conf, err := adm.ServerConfig(filepath.Join(dir, fmt.Sprintf("jwt-%d", i)))
		if err != nil {
			t.Fatal(err)
		}
		path := filepath.Join(dir, fmt.Sprintf("server-%d.conf", i))
		if err := os.WriteFile(path, conf, 0o600); err != nil {
			t.Fatal(err)
		}
		clusterPort, _ := strconv.Atoi(routes[i][len("nats-route://127.0.0.1:"):])
		s, err := natslocal.Start(natslocal.Options{StoreDir: filepath.Join(dir, fmt.Sprintf("store-%d", i)), Port: ports[i], ConfigFile: path,
			Name: fmt.Sprintf("s%d", i), Cluster: "refbus-test", ClusterPort: clusterPort, Routes: routes})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Shutdown(); s.WaitForShutdown() })
		servers[i], urls[i] = s, s.ClientURL()
	}
	poll.Until(t, 30*time.Second, func() error {
		jsz, err := servers[0].Jsz(nil)
		if err != nil {
			return err
		}
		if jsz.Meta == nil || jsz.Meta.Leader == "" || jsz.Meta.Size != 3 {
			return fmt.Errorf("JetStream's cluster: %+v, want a leader and 3 peers", jsz.Meta)
		}
		return nil
	})
	poll.Until(t, 30*time.Second, func() error { return netw.Provision(ctx, urls[0]) })
	b, err := netw.AddNode(ctx, urls[0], admin.NodeSpec{Name: "kz-ngo", Kind: "ngo", Organizations: []string{"kz-nur"}})
	if err != nil {
		t.Fatal(err)
	}
	adminNC, err := nats.Connect(urls[2], nats.UserCredentials(netw.AdminCreds()))
	if err != nil {
		t.Fatal(err)
	}
	defer adminNC.Close()
	js, err := jetstream.New(adminNC)
	if err != nil {
		t.Fatal(err)
	}
	stream, err := js.Stream(ctx, bus.Stream)
	if err != nil {
		t.Fatal(err)
	}
	if info, err := stream.Info(ctx); err != nil || info.Config.Replicas != 3 {
		t.Fatalf("the stream's replicas: %v %v, want 3", info, err)
	}
	connect := func(url string) (*nats.Conn, error) {
		return nats.Connect(url, nats.UserCredentials(b.Creds()), nats.NoReconnect(), nats.Timeout(2*time.Second))
	}
	// The node, connected to the two servers the administrator does not
	// talk to.
	var conns []*nats.Conn
	for _, url := range urls[1:] {
		nc, err := connect(url)
		if err != nil {
			t.Fatalf("the node connects to %s: %v", url, err)
		}
		t.Cleanup(nc.Close)
		conns = append(conns, nc)
	}

	if err := netw.SetStatus(ctx, urls[0], "kz-ngo", network.Suspended); err != nil {
		t.Fatal(err)
	}
	poll.Until(t, 15*time.Second, func() error {
		for i, nc := range conns {
			if !nc.IsClosed() {
				return fmt.Errorf("the suspended node's connection to %s is still open", urls[i+1])
			}
		}
		for _, url := range urls {
			if nc, err := connect(url); err == nil {
				nc.Close()
				return fmt.Errorf("the suspended node connects to %s", url)
			} else if !errors.Is(err, nats.ErrAuthorization) && !strings.Contains(strings.ToLower(err.Error()), "authorization") {
				return fmt.Errorf("the suspended node's connection to %s: %v, want an authorization error", url, err)
			}
		}
		return nil
	})

	if err := netw.SetStatus(ctx, urls[0], "kz-ngo", network.Active); err != nil {
		t.Fatal(err)
	}
	poll.Until(t, 15*time.Second, func() error {
		for _, url := range urls {
			nc, err := connect(url)
			if err != nil {
				return fmt.Errorf("the resumed node connects to %s: %w", url, err)
			}
			nc.Close()
		}
		return nil
	})
}

func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}
