package main

import (
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/nats-io/nats.go"

	"github.com/refbus/refbus/schemas"
	"github.com/refbus/refbus/services/auditor/internal/render"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata")

// golden compares got with testdata/name, or rewrites it with -update.
func golden(t *testing.T, name, got string) {
	t.Helper()
	path := filepath.Join("testdata", name)
	if *update {
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test -update to write it)", err)
	}
	if got != string(want) {
		t.Errorf("%s differs from the golden file (go test -update rewrites it); got:\n%s", name, got)
	}
}

func TestReplayGolden(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	f.publishAll(f.story())

	for _, format := range []string{"table", "jsonl"} {
		code, out, errOut := f.audit("replay", "--format", format)
		if code != exitOK {
			t.Fatalf("replay --format %s: exit %d: %s", format, code, errOut)
		}
		golden(t, "replay."+format+".golden", out)
	}

	dir := t.TempDir()
	if code, _, errOut := f.audit("replay", "--format", "html", "--out", dir); code != exitOK {
		t.Fatalf("replay --format html: exit %d: %s", code, errOut)
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
		b, err := os.ReadFile(filepath.Join(dir, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		golden(t, e.Name()+".golden", string(b))
	}
	if want := render.FileName(cs(1)) + " " + render.FileName(cs(2)); strings.Join(names, " ") != want {
		t.Errorf("html pages: %v, want %s", names, want)
	}

	// One case to standard output is the same page.
	code, out, errOut := f.audit("replay", "--format", "html", "--case", cs(2))
	if code != exitOK {
		t.Fatalf("replay --format html --case: exit %d: %s", code, errOut)
	}
	golden(t, render.FileName(cs(2))+".golden", out)

	// A service named in case 1 has markup in it, which must reach the page
	// as text,
	// and a page loads nothing from anywhere.
	b, err := os.ReadFile(filepath.Join(dir, render.FileName(cs(1))))
	if err != nil {
		t.Fatal(err)
	}
	page := string(b)
	if strings.Contains(page, "<support>") || !strings.Contains(page, "disability &lt;support&gt; &amp; benefits") {
		t.Error("the service's markup is not escaped")
	}
	for _, external := range []string{"<script", "<link", "<img", "src=", "href=", "@import", "url("} {
		if strings.Contains(page, external) {
			t.Errorf("the page is not self-contained: it has %q", external)
		}
	}
}

// replaySeqs runs replay with args and checks the stream sequences of the
// events it lists (a table, as seqs reads it).
func (f *fixture) replaySeqs(t *testing.T, args []string, want string) {
	t.Helper()
	code, out, errOut := f.audit(append([]string{"replay"}, args...)...)
	if code != exitOK {
		t.Errorf("replay %v: exit %d: %s", args, code, errOut)
		return
	}
	if got := seqs(out); got != want {
		t.Errorf("replay %v: seqs %q, want %q", args, got, want)
	}
}

// seqs returns the stream sequences of the lines of a table.
func seqs(table string) string {
	var out []string
	for _, line := range strings.Split(strings.TrimSpace(table), "\n")[1:] {
		out = append(out, strings.Fields(line)[0])
	}
	return strings.Join(out, " ")
}

func TestReplayFilters(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	f.publishAll(f.story())
	for _, tc := range []struct {
		args []string
		want string
	}{
		{nil, "1 2 3 4 5 6 7 8 9 10 11 12 13 14"},
		{[]string{"--agency", "social"}, "7 8 11 12 13 14"},
		{[]string{"--agency", "ngo", "--type", schemas.TypeDeclined}, "13"},
		{[]string{"--type", schemas.TypeRequested}, "1 7 11"},
		{[]string{"--type", "org.refbus.referral.requested.v2"}, ""},
		{[]string{"--case", cs(2)}, "11 12 13 14"},
		{[]string{"--referral", ref(2)}, "7 8"},
		{[]string{"--from-seq", "5", "--to-seq", "8"}, "5 6 7 8"},
		{[]string{"--from-seq", "13"}, "13 14"},
		{[]string{"--from-seq", "99"}, ""},
		{[]string{"--since", "2000-01-01T00:00:00Z", "--to-seq", "2"}, "1 2"},
		{[]string{"--until", "2000-01-01T00:00:00Z"}, ""},
		{[]string{"--agency", "health", "--case", cs(1), "--to-seq", "6"}, "1 2 3 4 5 6"},
	} {
		f.replaySeqs(t, tc.args, tc.want)
	}
}

func TestUsageErrors(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	for _, args := range [][]string{
		{"replay", "--bogus"},
		{"replay", "--format", "xml"},
		{"replay", "--format", "html"},
		{"replay", "--out", "x"},
		{"replay", "--since", "yesterday"},
		{"replay", "--from-seq", "3", "--since", "2026-01-01T00:00:00Z"},
		{"replay", "--from-seq", "9", "--to-seq", "3"},
		{"replay", "--agency", "a.b"},
		{"verify", "extra"},
		{"reconcile"},
		{"reconcile", "--db", "health"},
		{"reconcile", "--db", "Mayor=postgres://x"},
		{"reconcile", "--db", "ngo=postgres://x", "--db", "ngo=postgres://y"},
		{"replay", "--agency", "Health"},
		{"nosuch"},
	} {
		code, _, errOut := f.audit(args...)
		if code != exitError || !strings.Contains(errOut, "refbus-audit: ") {
			t.Errorf("%v: exit %d, stderr %q; want 2 and a message", args, code, errOut)
		}
	}
	code, _, errOut := runAudit(t, "--nats", "nats://127.0.0.1:1", "verify")
	if code != exitError || !strings.Contains(errOut, "connect to NATS") {
		t.Errorf("unreachable NATS: exit %d, stderr %q", code, errOut)
	}
	code, out, _ := runAudit(t, "--help")
	if code != exitOK || !strings.Contains(out, "Exit status") {
		t.Errorf("--help: exit %d, %q", code, out)
	}
}

// A message that is not an event is shown as such in the table, and left
// out of JSON Lines with a word on standard error and exit status 1.
func TestReplayUnreadable(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	f.publishAll(f.story()[:1])
	f.publish(&nats.Msg{Subject: "refbus.health.ngo.referral.requested", Data: []byte("not an event")})
	code, out, _ := f.audit("replay")
	if code != exitOK || !strings.Contains(out, "health → ngo           (unreadable)") {
		t.Errorf("table: exit %d\n%s", code, out)
	}
	code, out, errOut := f.audit("replay", "--format", "jsonl")
	if code != exitProblems || strings.Count(out, "\n") != 1 || !strings.Contains(errOut, "seq 2: left out: body is not a JSON object") {
		t.Errorf("jsonl: exit %d\n%s\n%s", code, out, errOut)
	}
}
