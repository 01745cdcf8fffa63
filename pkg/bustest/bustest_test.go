package bustest_test

import (
	"testing"

	"github.com/refbus/refbus/pkg/bustest"
	"github.com/refbus/refbus/pkg/internal/testapp"
	"github.com/refbus/refbus/pkg/pgtest"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

// pkg's own application, made only of pkg's parts, passes the crash suite.
func TestCrashSuite(t *testing.T) {
	t.Parallel()
	bustest.Run(t, testapp.App{})
}
