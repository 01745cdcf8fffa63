package deploy

import (
	"bufio"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/jwt/v2"
	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nkeys"

	"github.com/refbus/refbus/pkg/poll"
)

// tlsDir is where the shipped configs expect their TLS files.
const tlsDir = "/etc/refbus/tls/"

// tlsFile is a file name under tlsDir in a config.
var tlsFile = regexp.MustCompile(regexp.QuoteMeta(tlsDir) + `([A-Za-z0-9._-]+)`)

// shipped is a copy of the shipped configs that nats-server's own parser
// can read: it reads the TLS files a config names, so the copies name
// files made for the test under their dir (ca.pem, a CA; for each
// certificate X.pem, one the CA signed for 127.0.0.1, with its key in
// X-key.pem), one set for all the configs.
type shipped struct {
	dir string
	// CA is the pool of the CA that signed the servers' certificates.
	CA *x509.CertPool
}

// copyShipped copies nats/*.conf to a temp dir and makes the TLS files
// they name.
func copyShipped(t *testing.T) *shipped {
	t.Helper()
	dir := t.TempDir()
	certs := filepath.Join(dir, "tls")
	if err := os.Mkdir(certs, 0o700); err != nil {
		t.Fatal(err)
	}
	files, err := filepath.Glob("nats/*.conf")
	if err != nil {
		t.Fatal(err)
	}
	var named []string
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range tlsFile.FindAllStringSubmatch(string(b), -1) {
			if !slices.Contains(named, m[1]) {
				named = append(named, m[1])
			}
		}
		b = []byte(strings.ReplaceAll(string(b), tlsDir, certs+string(filepath.Separator)))
		if err := os.WriteFile(filepath.Join(dir, filepath.Base(f)), b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	// operator.conf, as refbus-admin init writes it (services/admin's
	// tests start a server from refbus-admin's own).
	if err := os.WriteFile(filepath.Join(dir, "operator.conf"), operatorConf(t, filepath.Join(dir, "jwt")), 0o600); err != nil {
		t.Fatal(err)
	}
	// The store's key, as the guide has the operator make it.
	if err := os.WriteFile(filepath.Join(dir, "nats-store-key.conf"), []byte(`key: "0123456789abcdef0123456789abcdef"`+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	ca, caKey := newCA(t, filepath.Join(certs, "ca.pem"))
	for _, f := range named {
		switch {
		case f == "ca.pem":
		case strings.HasSuffix(f, "-key.pem"):
			if !slices.Contains(named, strings.TrimSuffix(f, "-key.pem")+".pem") {
				t.Fatalf("%s%s: a key with no certificate beside it (X.pem, X-key.pem)", tlsDir, f)
			}
		case strings.HasSuffix(f, ".pem"):
			newCert(t, ca, caKey, filepath.Join(certs, f), filepath.Join(certs, strings.TrimSuffix(f, ".pem")+"-key.pem"))
		default:
			t.Fatalf("%s%s: want .pem files", tlsDir, f)
		}
	}
	pool := x509.NewCertPool()
	pool.AddCert(ca)
	return &shipped{dir: dir, CA: pool}
}

// load parses the copy of nats/name.
func (s *shipped) load(t *testing.T, name string) *server.Options {
	t.Helper()
	opts, err := server.ProcessConfigFile(filepath.Join(s.dir, name))
	if err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	return opts
}

// newCA writes a CA's certificate to path.
func newCA(t *testing.T, path string) (*x509.Certificate, *ecdsa.PrivateKey) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "refbus test CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	writePEM(t, path, "CERTIFICATE", der)
	ca, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return ca, key
}

// newCert writes a certificate for 127.0.0.1, signed by ca, good for a
// server and for a route's client side, and its key.
func newCert(t *testing.T, ca *x509.Certificate, caKey *ecdsa.PrivateKey, certPath, keyPath string) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	serial, err := rand.Int(rand.Reader, big.NewInt(1<<62))
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: serial, Subject: pkix.Name{CommonName: filepath.Base(certPath)},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		KeyUsage:    x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
		IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	writePEM(t, certPath, "CERTIFICATE", der)
	k, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	writePEM(t, keyPath, "EC PRIVATE KEY", k)
}

func writePEM(t *testing.T, path, typ string, der []byte) {
	t.Helper()
	if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
}

// The cluster configs ask for TLS on client connections and on routes,
// with the peer's certificate verified on routes, and make one JetStream
// cluster of three servers.
func TestClusterConfigsTLS(t *testing.T) {
	confs := copyShipped(t)
	var names, routes []string
	for i := 1; i <= 3; i++ {
		f := fmt.Sprintf("cluster-%d.conf", i)
		opts := confs.load(t, f)
		if opts.TLSConfig == nil || len(opts.TLSConfig.Certificates) != 1 {
			t.Errorf("%s: clients do not connect over TLS with a certificate", f)
		}
		c := opts.Cluster
		if c.TLSConfig == nil || len(c.TLSConfig.Certificates) != 1 || c.TLSConfig.ClientAuth != tls.RequireAndVerifyClientCert || c.TLSConfig.ClientCAs == nil {
			t.Errorf("%s: routes do not use TLS that verifies the peer's certificate against a CA", f)
		}
		if !opts.JetStream || c.Name != "refbus" || len(opts.Routes) != 3 {
			t.Errorf("%s: JetStream %v, cluster %q with %d routes; want JetStream in cluster refbus with routes to 3 servers", f, opts.JetStream, c.Name, len(opts.Routes))
		}
		names = append(names, opts.ServerName)
		var rs []string
		for _, r := range opts.Routes {
			rs = append(rs, r.String())
		}
		slices.Sort(rs)
		if routes == nil {
			routes = rs
		} else if !slices.Equal(rs, routes) {
			t.Errorf("%s routes to %v, cluster-1.conf to %v", f, rs, routes)
		}
	}
	if slices.Sort(names); len(slices.Compact(names)) != 3 {
		t.Errorf("the servers are named %v: each needs a name of its own", names)
	}
}

// The three cluster configs, as shipped but on loopback ports, make a
// cluster over TLS routes (each server checks the other's certificate)
// with a JetStream leader and three peers, and serve clients over TLS.
func TestClusterConfigsRun(t *testing.T) {
	confs := copyShipped(t)
	var servers []*server.Server
	ports := make([]int, 3)
	routes := make([]string, 3)
	for i := range ports {
		ports[i] = freePort(t)
		routes[i] = fmt.Sprintf("nats-route://127.0.0.1:%d", ports[i])
	}
	for i := range 3 {
		opts := confs.load(t, fmt.Sprintf("cluster-%d.conf", i+1))
		// One machine: loopback ports of its own for each, no monitoring.
		opts.Host, opts.Port, opts.HTTPPort, opts.NoSigs = "127.0.0.1", -1, 0, true
		opts.Cluster.Host, opts.Cluster.Port = "127.0.0.1", ports[i]
		opts.Routes = server.RoutesFromStr(strings.Join(routes, ","))
		opts.StoreDir = t.TempDir()
		srv, err := server.NewServer(opts)
		if err != nil {
			t.Fatal(err)
		}
		srv.Start()
		t.Cleanup(srv.Shutdown)
		servers = append(servers, srv)
	}
	poll.Until(t, 30*time.Second, func() error {
		for _, s := range servers {
			if n := s.NumRoutes(); n < 2 {
				return fmt.Errorf("%s has %d routes, want 2", s.Name(), n)
			}
		}
		jsz, err := servers[0].Jsz(nil)
		if err != nil {
			return err
		}
		if jsz.Meta == nil || jsz.Meta.Leader == "" || jsz.Meta.Size != 3 {
			return fmt.Errorf("JetStream's cluster: %+v, want a leader and 3 peers", jsz.Meta)
		}
		return nil
	})
	for _, s := range servers {
		clientTLS(t, s.Addr().String(), confs.CA)
	}
}

// clientTLS checks that the server at addr requires TLS of its clients
// and shows a certificate the CA in pool signed.
func clientTLS(t *testing.T, addr string, pool *x509.CertPool) {
	t.Helper()
	conn, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(5 * time.Second))
	// NATS greets with INFO in clear text, then the client starts TLS.
	line, err := bufio.NewReader(conn).ReadString('\n')
	if err != nil {
		t.Fatal(err)
	}
	var info struct {
		TLSRequired bool `json:"tls_required"`
	}
	if err := json.Unmarshal([]byte(strings.TrimPrefix(strings.TrimSpace(line), "INFO ")), &info); err != nil || !info.TLSRequired {
		t.Fatalf("%s does not require TLS of clients: %q", addr, line)
	}
	tc := tls.Client(conn, &tls.Config{RootCAs: pool, ServerName: "127.0.0.1", MinVersion: tls.VersionTLS12})
	if err := tc.Handshake(); err != nil {
		var verr *tls.CertificateVerificationError
		if errors.As(err, &verr) {
			t.Fatalf("%s shows a certificate the CA did not sign: %v", addr, err)
		}
		t.Fatalf("TLS with %s: %v", addr, err)
	}
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

// operatorConf is an operator mode configuration: an operator, its system
// account, and a full resolver keeping JWTs in dir.
func operatorConf(t *testing.T, dir string) []byte {
	t.Helper()
	op, _ := nkeys.CreateOperator()
	sys, _ := nkeys.CreateAccount()
	opPub, _ := op.PublicKey()
	sysPub, _ := sys.PublicKey()
	ac := jwt.NewAccountClaims(sysPub)
	ac.Name = "SYS"
	sysJWT, err := ac.Encode(op)
	if err != nil {
		t.Fatal(err)
	}
	oc := jwt.NewOperatorClaims(opPub)
	oc.SystemAccount = sysPub
	opJWT, err := oc.Encode(op)
	if err != nil {
		t.Fatal(err)
	}
	return fmt.Appendf(nil, "operator: %s\nsystem_account: %s\nresolver: { type: full, dir: %q }\nresolver_preload: { %s: %s }\n", opJWT, sysPub, dir, sysPub, sysJWT)
}
