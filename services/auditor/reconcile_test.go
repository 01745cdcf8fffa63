package main

import (
	"errors"
	"strings"
	"testing"
)

// Any well-formed node name names a store: the network is not a list.
func TestParseStores(t *testing.T) {
	t.Parallel()
	stores, err := parseStores([]string{"health=postgres://a/health", "ngo_nur=postgres://b/ngo"})
	if err != nil || len(stores) != 2 || stores[1].Node != "ngo_nur" || stores[1].URL != "postgres://b/ngo" {
		t.Fatalf("parseStores: %+v, %v", stores, err)
	}
	for _, tc := range []struct {
		dbs  []string
		want string
	}{
		{nil, "give at least one --db node=URL"},
		{[]string{"health"}, "is not node=URL"},
		{[]string{"Mayor=postgres://x"}, `"Mayor" is not a well-formed node name`},
		{[]string{"a.b=postgres://x"}, `"a.b" is not a well-formed node name`},
		{[]string{"ngo=postgres://x", "ngo=postgres://y"}, "--db ngo is given twice"},
	} {
		_, err := parseStores(tc.dbs)
		var u errUsage
		if !errors.As(err, &u) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("parseStores(%q): %v, want a usage error with %q", tc.dbs, err, tc.want)
		}
	}
}
