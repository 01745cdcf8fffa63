package person_test

import (
	"bytes"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"testing"

	"github.com/refbus/refbus/pkg/person"
)

// networkKey is 33 bytes. The expected keys below come from openssl, not from
// this package:
//
//	printf 'KZ:880101300123' | openssl dgst -sha256 -hmac 'refbus-test-network-key-32-bytes!'
const networkKey = "refbus-test-network-key-32-bytes!"

func mustKeyer(t *testing.T, key string) *person.Keyer {
	t.Helper()
	k, err := person.NewKeyer([]byte(key))
	if err != nil {
		t.Fatalf("NewKeyer: %v", err)
	}
	return k
}

func TestKeyKnownVectors(t *testing.T) {
	t.Parallel()
	k := mustKeyer(t, networkKey)
	tests := []struct {
		id   person.ID
		want person.Key
	}{
		{person.ID{Country: person.KZ, Number: "880101300123"},
			"95289979ff724329fb5a89a283c775ba62e747ac90b288409c515a103796dee5"},
		{person.ID{Country: person.KG, Number: "21507199500123"},
			"371b0ed2aeef3124afd1a6e336aa6d09d01f1ecd00ca916cd6dd2bc30f93c0a4"},
		// A hand-built Number with spaces is the same person.
		{person.ID{Country: person.KZ, Number: " 880101300123 "},
			"95289979ff724329fb5a89a283c775ba62e747ac90b288409c515a103796dee5"},
		// Ids Parse would not accept get no key, so they cannot match.
		{person.ID{}, ""},
		{person.ID{Country: person.KZ, Number: "880101300124"}, ""},
		{person.ID{Country: person.KG, Number: "880101300123"}, ""},
		{person.ID{Country: "XX", Number: "880101300123"}, ""},
	}
	for _, tc := range tests {
		if got := k.Key(tc.id); got != tc.want {
			t.Errorf("Key(%v) = %q, want %q", tc.id, got, tc.want)
		}
	}
}

func TestKeySameAcrossAgencies(t *testing.T) {
	t.Parallel()
	id, err := person.Parse(person.KZ, "950715401237")
	if err != nil {
		t.Fatal(err)
	}
	// Two agencies, each with its own copy of the network key.
	health := mustKeyer(t, networkKey)
	social := mustKeyer(t, networkKey)
	a, b := health.Key(id), social.Key(id)
	if a == "" || a != b || health.Key(id) != a {
		t.Fatalf("keys %q and %q, want equal and non-empty", a, b)
	}

	other := mustKeyer(t, strings.Replace(networkKey, "r", "R", 1))
	if c := other.Key(id); c == a || c == "" {
		t.Fatalf("another network gives %q, want a different non-empty key than %q", c, a)
	}

	id2, err := person.Parse(person.KZ, "880101300123")
	if err != nil {
		t.Fatal(err)
	}
	if health.Key(id2) == a {
		t.Fatal("two people share a key")
	}
}

func TestNewKeyerCopiesKey(t *testing.T) {
	t.Parallel()
	buf := []byte(networkKey)
	k, err := person.NewKeyer(buf)
	if err != nil {
		t.Fatal(err)
	}
	id := person.ID{Country: person.KZ, Number: "880101300123"}
	before := k.Key(id)
	clear(buf)
	if after := k.Key(id); after != before {
		t.Fatalf("key changed from %q to %q after the caller wiped its buffer", before, after)
	}
}

func TestNewKeyerShortKey(t *testing.T) {
	t.Parallel()
	for _, n := range []int{0, 1, 16, 31} {
		k, err := person.NewKeyer(bytes.Repeat([]byte{'k'}, n))
		if !errors.Is(err, person.ErrShortNetworkKey) || k != nil {
			t.Errorf("NewKeyer(%d bytes) = %v, %v; want ErrShortNetworkKey", n, k, err)
		}
		if want := fmt.Sprintf("network key has %d bytes, want at least 32: network key too short", n); err != nil && err.Error() != want {
			t.Errorf("message %q, want %q", err.Error(), want)
		}
	}
	if _, err := person.NewKeyer(bytes.Repeat([]byte{'k'}, 32)); err != nil {
		t.Errorf("NewKeyer(32 bytes): %v", err)
	}
}

func TestKeyerHidesNetworkKey(t *testing.T) {
	t.Parallel()
	k := mustKeyer(t, networkKey)
	var logged bytes.Buffer
	slog.New(slog.NewTextHandler(&logged, nil)).Info("x", "keyer", k)
	for _, s := range []string{
		fmt.Sprint(k), fmt.Sprintf("%+v", k), fmt.Sprintf("%#v", k), fmt.Sprintf("%x", k),
		fmt.Sprintf("%s", k), fmt.Sprintf("%v", *k), fmt.Sprintf("%v", struct{ K *person.Keyer }{k}),
		logged.String(),
	} {
		if strings.Contains(s, "refbus") || strings.Contains(s, "7265666275") || strings.Contains(s, "114 101 102") {
			t.Errorf("output %q shows the network key", s)
		}
	}
}
