package core_test

import (
	"log/slog"
	"maps"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/refbus/refbus/services/internal/core"
	"github.com/refbus/refbus/services/internal/core/app"
	"github.com/refbus/refbus/services/internal/core/directory"
)

// Deadlines per service come from REFBUS_SLAS, "default" naming those of
// services with none; a wrong one, or a coordinator that is not a node
// name, stops the node before it starts, saying which setting is wrong.
func TestSLAsFromEnv(t *testing.T) {
	got, err := core.ParseSLAs("crisis_shelter=1h/2160h, legal_help=48h/0,default=24h/0")
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]app.SLA{
		"crisis_shelter": {Accept: time.Hour, Complete: 2160 * time.Hour},
		"legal_help":     {Accept: 48 * time.Hour},
		"":               {Accept: 24 * time.Hour},
	}
	if !maps.Equal(got, want) {
		t.Errorf("ParseSLAs: %+v, want %+v", got, want)
	}
	for _, bad := range []string{"crisis_shelter=2h", "crisis_shelter=two hours/0", "=1h/1h", "legal_help=1h/-1h", "legal_help=-1h/0"} {
		if _, err := core.ParseSLAs(bad); err == nil {
			t.Errorf("ParseSLAs(%q) accepted", bad)
		}
	}
	k := plain(legalHelp)
	t.Setenv("REFBUS_NODE", "legal_aid")
	t.Setenv("REFBUS_SLAS", "crisis_shelter=soon/0")
	c := core.ConfigFromEnv("legal_aid")
	c.DatabaseURL = "postgres://127.0.0.1:1/none"
	if _, err := core.New(t.Context(), c, k, slog.New(slog.DiscardHandler)); err == nil || !strings.Contains(err.Error(), "REFBUS_SLAS") {
		t.Fatalf("New with a bad deadline: %v", err)
	}
	t.Setenv("REFBUS_SLAS", "")
	t.Setenv("REFBUS_COORDINATOR", "Ministry of Labour")
	c = core.ConfigFromEnv("legal_aid")
	c.DatabaseURL = "postgres://127.0.0.1:1/none"
	if _, err := core.New(t.Context(), c, k, slog.New(slog.DiscardHandler)); err == nil || !strings.Contains(err.Error(), "REFBUS_COORDINATOR") {
		t.Fatalf("New with a coordinator that is not a node name: %v", err)
	}
}

// REFBUS_ORGS names a JSON file of the organizations a node hosts; a file
// that cannot be read, or organizations that are wrong, stop the node
// before it starts, saying what is wrong.
func TestOrganizationsFromEnv(t *testing.T) {
	dir := t.TempDir()
	write := func(name, body string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	good := write("good.json", `[{"id": "kz-legal-aid-almaty", "name": "Legal aid centre, Almaty", "area": "Almaty", "languages": ["kk", "ru"],
		"services": [{"name": "legal_help", "title": "Legal consultation", "eligibility": "families", "languages": ["kk"], "area": "Almaty", "accept_within": "48h"}]},
		{"id": "kz-legal-aid-shymkent", "name": "Legal aid centre, Shymkent"}]`)
	t.Setenv("REFBUS_ORGS", good)
	c := core.ConfigFromEnv("legal_aid")
	if len(c.Organizations) != 2 || c.Organizations[0].ID != "kz-legal-aid-almaty" || c.Organizations[0].Services[0].AcceptWithin != directory.Duration(48*time.Hour) {
		t.Fatalf("organizations from %s: %+v", good, c.Organizations)
	}
	beds := `{"name": "crisis_shelter", "title": "t", "eligibility": "e", "languages": [], "area": "a", "beds": 5}`
	for _, bad := range []struct{ body, want string }{
		{`[{"id": "kz-x", "name": "X", "servces": []}]`, "servces"},
		{`[{"id": "Almaty polyclinic", "name": "X"}]`, `id "Almaty polyclinic"`},
		{`[{"id": "kz-x", "name": ""}]`, "kz-x has no name"},
		{`[{"id": "kz-x", "name": "X"}, {"id": "kz-x", "name": "Y"}]`, "kz-x is given twice"},
		{`[{"id": "kz-x", "name": "X", "services": [{"name": "legal_help"}, {"name": "legal_help"}]}]`, "offers the service legal_help twice"},
		{`[{"id": "kz-x", "name": "X", "services": [` + beds + `]}, {"id": "kz-y", "name": "Y", "services": [` + beds + `]}]`, "kz-x and kz-y both offer crisis_shelter"},
	} {
		t.Setenv("REFBUS_ORGS", write("bad.json", bad.body))
		c := core.ConfigFromEnv("legal_aid")
		c.DatabaseURL = "postgres://127.0.0.1:1/none"
		if _, err := core.New(t.Context(), c, plain(legalHelp), slog.New(slog.DiscardHandler)); err == nil || !strings.Contains(err.Error(), "REFBUS_ORGS") || !strings.Contains(err.Error(), bad.want) {
			t.Errorf("New with organizations %s: %v, want an error naming REFBUS_ORGS and %q", bad.body, err, bad.want)
		}
	}
	t.Setenv("REFBUS_ORGS", filepath.Join(dir, "missing.json"))
	c = core.ConfigFromEnv("legal_aid")
	c.DatabaseURL = "postgres://127.0.0.1:1/none"
	if _, err := core.New(t.Context(), c, plain(legalHelp), slog.New(slog.DiscardHandler)); err == nil || !strings.Contains(err.Error(), "missing.json") {
		t.Errorf("New with a missing REFBUS_ORGS file: %v", err)
	}
}

// A key may come from a file that name_FILE names, which only its owner
// may read: the node reads it from there, and refuses a file others may
// read, saying how to fix it.
func TestSecretFromFile(t *testing.T) {
	dir := t.TempDir()
	seed := filepath.Join(dir, "seed")
	if err := os.WriteFile(seed, []byte("SAAFROMFILE\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	env := map[string]string{"REFBUS_SIGNING_SEED_FILE": seed, "REFBUS_SIGNING_SEED": "SAAFROMENV"}
	c := core.ConfigFrom(func(k string) string { return env[k] }, "ngo")
	if string(c.SigningSeed) != "SAAFROMFILE" {
		t.Fatalf("signing seed %q, want the file's", c.SigningSeed)
	}
	if err := os.Chmod(seed, 0o644); err != nil {
		t.Fatal(err)
	}
	_, err := core.Secret(func(k string) string { return env[k] }, "REFBUS_SIGNING_SEED")
	if err == nil || !strings.Contains(err.Error(), "chmod 600 "+seed) {
		t.Fatalf("a seed file others may read: %v", err)
	}
	if v, err := core.Secret(func(k string) string { return map[string]string{"REFBUS_API_KEY": "abc"}[k] }, "REFBUS_API_KEY"); err != nil || v != "abc" {
		t.Fatalf("without _FILE: %q %v", v, err)
	}
}
