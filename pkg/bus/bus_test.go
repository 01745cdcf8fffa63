package bus_test

import (
	"strings"
	"testing"

	"github.com/refbus/refbus/pkg/bus"
)

func TestValidNode(t *testing.T) {
	for name, want := range map[string]bool{
		"a": true, "node-1": true, "node_1": true, "9lives": true, strings.Repeat("n", 64): true,
		"": false, "-a": false, "_a": false, "Node": false, "a.b": false, "a*": false, "a>": false, "a b": false,
		strings.Repeat("n", 65): false, "ñ": false,
	} {
		if got := bus.ValidNode(name); got != want {
			t.Errorf("ValidNode(%q) = %v, want %v", name, got, want)
		}
	}
}

func TestNodeOf(t *testing.T) {
	for source, want := range map[string]string{
		bus.Source("alpha"): "alpha", "/agencies/alpha": "alpha",
		"/agencies/": "", "/agencies/a.b": "", "/elsewhere/alpha": "", "alpha": "",
	} {
		got, ok := bus.NodeOf(source)
		if got != want && ok || ok != (want != "") {
			t.Errorf("NodeOf(%q) = %q, %v; want %q", source, got, ok, want)
		}
	}
}

func TestSubjects(t *testing.T) {
	s := bus.Subject("alpha", "beta", "org.refbus.referral.requested.v1")
	if s != "refbus.alpha.beta.referral.requested" {
		t.Fatalf("Subject = %q", s)
	}
	from, to, err := bus.ParseSubject(s)
	if err != nil || from != "alpha" || to != "beta" {
		t.Fatalf("ParseSubject(%q) = %q, %q, %v", s, from, to, err)
	}
	if _, _, err := bus.ParseSubject("other.alpha.beta.x"); err == nil {
		t.Fatal("ParseSubject took a subject outside refbus")
	}
}
