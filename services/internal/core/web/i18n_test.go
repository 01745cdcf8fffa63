package web

import (
	"io/fs"
	"net/http/httptest"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/refbus/refbus/pkg/referral"
)

// TestCataloguesComplete fails when a catalogue misses a key another has,
// when a key the templates or the code name is in none, or when a message
// takes other arguments than in English.
func TestCataloguesComplete(t *testing.T) {
	cats, err := loadCatalogues()
	if err != nil {
		t.Fatal(err)
	}
	all := map[string]bool{}
	for _, c := range cats {
		for k := range c {
			all[k] = true
		}
	}
	// Keys built at run time from the domain's names.
	for _, s := range referral.States() {
		all["status."+string(s)] = true
	}
	for _, m := range referral.Moves() {
		all["move."+string(m)] = true
		all["step."+string(m)] = true
	}
	all["step.request"], all["step.overdue"] = true, true
	for _, r := range []referral.ReasonCode{referral.NoCapacity, referral.NotEligible, referral.OutOfArea, referral.Duplicate, referral.FamilyRefused, referral.Other} {
		all["reason."+string(r)] = true
	}
	// Node and service names are data: the kinds' own (agency.health,
	// service.crisis_shelter) are in the catalogues, so each language must
	// have them; that every kind's are there is checked where the kinds are
	// known (package scenario, TestUINamesEveryKind).
	for _, r := range Roles {
		all["role."+r] = true
	}
	// Keys the templates and the Go code name literally.
	lit := regexp.MustCompile(`(?:Msg|errorPage\(w, r, [^,]+,|render\([^"]*"[a-z]+", "[a-z]*", [^,]+,) "([a-z_]+\.[a-z_.]+)"`)
	err = fs.WalkDir(templateFiles, ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, _ := fs.ReadFile(templateFiles, p)
		for _, m := range lit.FindAllStringSubmatch(string(b), -1) {
			all[m[1]] = true
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"error.conflict", "error.invalid", "error.forbidden", "error.not_found", "error.internal", "error.other_agency", "login.failed", "login.throttled", "fmt.datetime", "fmt.date"} {
		all[k] = true
	}
	keys := slices.Sorted(func(yield func(string) bool) {
		for k := range all {
			if !yield(k) {
				return
			}
		}
	})
	verb := regexp.MustCompile(`%[a-z]`)
	for _, l := range Langs {
		for _, k := range keys {
			m, ok := cats[l][k]
			if !ok {
				t.Errorf("catalogue %s misses %q", l, k)
				continue
			}
			if strings.TrimSpace(m) == "" {
				t.Errorf("catalogue %s: %q is empty", l, k)
			}
			if en := cats["en"][k]; strings.Join(verb.FindAllString(m, -1), "") != strings.Join(verb.FindAllString(en, -1), "") {
				t.Errorf("catalogue %s: %q takes %v, English takes %v", l, k, verb.FindAllString(m, -1), verb.FindAllString(en, -1))
			}
		}
	}
}

// A page before sign-in is in the browser's language if the UI has it,
// else in the network's (Config.Lang), not always Russian.
func TestBrowserLangFallsBackToTheNetworks(t *testing.T) {
	for _, c := range []struct{ accept, def, want string }{
		{"", "ky", "ky"},
		{"de-DE,de;q=0.9", "ky", "ky"},
		{"kk-KZ,ru;q=0.5", "ky", "kk"},
		{"", "ru", "ru"},
	} {
		r := httptest.NewRequest("GET", "/ui/login", nil)
		if c.accept != "" {
			r.Header.Set("Accept-Language", c.accept)
		}
		if got := browserLang(r, c.def); got != c.want {
			t.Errorf("Accept-Language %q, network's %s: %s, want %s", c.accept, c.def, got, c.want)
		}
	}
}
