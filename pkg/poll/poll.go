// Package poll waits in tests for a condition, with a deadline, instead of
// sleeping. Only tests import it.
package poll

import (
	"testing"
	"time"
)

// Until calls cond every 20 ms until it returns nil, and fails the test
// with cond's last error if that has not happened within d.
func Until(t testing.TB, d time.Duration, cond func() error) {
	t.Helper()
	deadline := time.Now().Add(d)
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for {
		err := cond()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("not within %s: %v", d, err)
		}
		<-tick.C
	}
}

// Always calls cond every 50 ms for d, and fails the test the first time it
// returns an error.
func Always(t testing.TB, d time.Duration, cond func() error) {
	t.Helper()
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for deadline := time.Now().Add(d); time.Now().Before(deadline); <-tick.C {
		if err := cond(); err != nil {
			t.Fatal(err)
		}
	}
}
