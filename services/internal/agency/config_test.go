package agency_test

import (
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/refbus/refbus/services/internal/agency"
)

// Deadlines per service come from REFBUS_SLAS over the defaults, and a
// wrong one stops the service before it starts, saying which.
func TestSLAsFromEnv(t *testing.T) {
	got, err := agency.ParseSLAs("crisis_shelter=1h/2160h, legal_help=48h/0,default=24h/0")
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]agency.SLA{
		"crisis_shelter":                {Accept: time.Hour, Complete: 2160 * time.Hour},
		"legal_help":                    {Accept: 48 * time.Hour},
		"":                              {Accept: 24 * time.Hour},
		"early_intervention_assessment": agency.DefaultSLAs["early_intervention_assessment"],
	}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("%q: %+v, want %+v", k, got[k], v)
		}
	}
	for _, bad := range []string{"crisis_shelter=2h", "crisis_shelter=two hours/0", "=1h/1h", "legal_help=1h/-1h"} {
		if _, err := agency.ParseSLAs(bad); err == nil {
			t.Errorf("ParseSLAs(%q) accepted", bad)
		}
	}
	t.Setenv("REFBUS_SLAS", "crisis_shelter=soon/0")
	c := agency.ConfigFromEnv("ngo")
	c.DatabaseURL = "postgres://127.0.0.1:1/none"
	if _, err := agency.New(t.Context(), c, slog.New(slog.DiscardHandler)); err == nil || !strings.Contains(err.Error(), "REFBUS_SLAS") {
		t.Fatalf("New with a bad deadline: %v", err)
	}
	t.Setenv("REFBUS_SLAS", "")
	t.Setenv("REFBUS_COORDINATOR", "ministry")
	c = agency.ConfigFromEnv("ngo")
	c.DatabaseURL = "postgres://127.0.0.1:1/none"
	if _, err := agency.New(t.Context(), c, slog.New(slog.DiscardHandler)); err == nil || !strings.Contains(err.Error(), "REFBUS_COORDINATOR") {
		t.Fatalf("New with an unknown coordinator: %v", err)
	}
}
