package main

import (
	"bytes"
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/refbus/refbus/pkg/bus"
	"github.com/refbus/refbus/pkg/poll"
	"github.com/refbus/refbus/services/internal/admin"
	"github.com/refbus/refbus/services/internal/core/app"
)

// After make run's demo (the four chains of help on both networks) and a
// revocation, nothing the families told lies in clear where it does not
// belong: in every node's database dump, a note, reason or outcome only
// at the two nodes of its referral (not at the receiver once the consent
// is revoked), a shelter's address only at the shelter, the national id
// nowhere; and none of them in any file of the NATS store or any line of
// the log.
func TestNothingLeaks(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the whole dev stack")
	}
	dir, err := os.MkdirTemp("", "refbus-devstack-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	args := []string{"-data", dir, "-nats-port", strconv.Itoa(freePort(t)), "-pg-port", strconv.Itoa(freePort(t))}
	for _, n := range networks {
		for _, nd := range n.nodes {
			args = append(args, "-"+nd.name, "127.0.0.1:"+strconv.Itoa(freePort(t)))
		}
	}
	var logs lockedBuffer
	log := slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	ctx, cancel := context.WithCancel(context.Background())
	ready, done := make(chan *stack, 1), make(chan error, 1)
	go func() { done <- runWith(ctx, log, args, func(s *stack) { ready <- s }) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("dev stack: %v", err)
		}
	})
	var s *stack
	select {
	case s = <-ready:
	case err := <-done:
		done <- err
		t.Fatalf("dev stack stopped: %v", err)
	case <-time.After(4 * time.Minute):
		t.Fatal("dev stack not ready after 4 minutes")
	}

	// The family of the third chain revokes its consent to the school's
	// referral: the family support centre erases what it was told.
	school, centre := s.apps["kz-education"], s.apps["kz-social"]
	var revoked app.Referral
	sent, err := school.Sent(ctx, "", 100)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range sent {
		if strings.Contains(r.Note, "signs of violence") {
			revoked = r
		}
	}
	if revoked.ConsentID == nil {
		t.Fatal("the demo's third chain is missing")
	}
	if _, err := school.RevokeConsent(ctx, *revoked.ConsentID, "the mother withdrew it"); err != nil {
		t.Fatal(err)
	}
	poll.Until(t, 30*time.Second, func() error {
		if r, err := centre.Referral(ctx, revoked.ID); err != nil || r.Note != "" {
			return fmt.Errorf("the centre still holds %q (%v)", r.Note, err)
		}
		return nil
	})

	// Where each secret belongs: the nodes whose API shows it.
	belongs := map[string][]string{DemoIIN: nil}
	add := func(secret, node string) {
		if len(secret) >= 12 && !slices.Contains(belongs[secret], node) {
			belongs[secret] = append(belongs[secret], node)
		}
	}
	for node, a := range s.apps {
		in, err := a.Inbox(ctx, "", 1000)
		if err != nil {
			t.Fatal(err)
		}
		out, err := a.Sent(ctx, "", 1000)
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range append(in, out...) {
			add(r.Note, node)
			add(r.Reason, node)
			add(r.Outcome, node)
			if r.Work != nil && r.Work.Placement != nil {
				add(r.Work.Placement.Address, node)
			}
		}
	}
	for _, addr := range []string{"Bishkek, Ene üyü, 12 Toktogul street", "Almaty region, Nur crisis centre, 3 Abai street"} {
		if len(belongs[addr]) != 1 {
			t.Errorf("the shelter's address %q is shown by %v, want its shelter only", addr, belongs[addr])
		}
	}
	if got := belongs[revoked.Note]; len(got) != 1 || got[0] != "kz-education" {
		t.Errorf("the revoked referral's note is shown by %v, want the school's node only", got)
	}
	if len(belongs) < 15 {
		t.Fatalf("only %d secrets to look for: the check would prove little", len(belongs))
	}

	for node := range s.apps {
		dump, err := s.pg.Dump(ctx, strings.ReplaceAll(node, "-", "_"))
		if err != nil {
			t.Fatal(err)
		}
		for secret, at := range belongs {
			// bytea columns (the outbox's and inbox's payloads) dump as hex.
			if (bytes.Contains(dump, []byte(secret)) || bytes.Contains(dump, []byte(hex.EncodeToString([]byte(secret))))) && !slices.Contains(at, node) {
				t.Errorf("%s's database dump holds %q, which belongs to %v", node, secret, at)
			}
		}
	}
	// Every event on both networks' streams, as their administrator reads
	// them (the store's files are encrypted: this reads past that).
	adm, err := admin.Open(filepath.Join(dir, "admin"))
	if err != nil {
		t.Fatal(err)
	}
	events := 0
	for _, dn := range networks {
		n, err := adm.Network(dn.name)
		if err != nil {
			t.Fatal(err)
		}
		nc, err := nats.Connect(s.natsURL, nats.UserCredentials(n.AdminCreds()))
		if err != nil {
			t.Fatal(err)
		}
		js, err := jetstream.New(nc)
		if err != nil {
			t.Fatal(err)
		}
		st, err := js.Stream(ctx, bus.Stream)
		if err != nil {
			t.Fatal(err)
		}
		info, err := st.Info(ctx)
		if err != nil {
			t.Fatal(err)
		}
		for seq := info.State.FirstSeq; seq <= info.State.LastSeq && info.State.Msgs > 0; seq++ {
			m, err := st.GetMsg(ctx, seq)
			if err != nil {
				t.Fatal(err)
			}
			events++
			for secret := range belongs {
				if bytes.Contains(m.Data, []byte(secret)) {
					t.Errorf("the %s stream's message %d (%s) holds %q", dn.name, seq, m.Subject, secret)
				}
			}
		}
		nc.Close()
	}
	if events < 30 {
		t.Fatalf("read %d messages of the streams: the check would prove little", events)
	}
	files := 0
	err = filepath.WalkDir(filepath.Join(dir, "nats"), func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := os.ReadFile(path)
		if errors.Is(err, fs.ErrNotExist) {
			return nil // compacted away meanwhile
		}
		if err != nil {
			return err
		}
		files++
		for secret := range belongs {
			if bytes.Contains(b, []byte(secret)) {
				t.Errorf("the NATS store file %s holds %q", path, secret)
			}
		}
		return nil
	})
	if err != nil || files == 0 {
		t.Fatalf("read %d files of the NATS store: %v", files, err)
	}
	text := logs.String()
	if !strings.Contains(text, "level=") {
		t.Fatal("nothing was logged: the check would prove nothing")
	}
	for secret := range belongs {
		if strings.Contains(text, secret) {
			t.Errorf("the log holds %q", secret)
		}
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

// lockedBuffer is a log's buffer that the nodes write at once.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}
