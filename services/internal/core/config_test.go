package core_test

import (
	"log/slog"
	"maps"
	"strings"
	"testing"
	"time"

	"github.com/refbus/refbus/services/internal/core"
	"github.com/refbus/refbus/services/internal/core/app"
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
