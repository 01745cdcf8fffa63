package scenario_test

import (
	"testing"

	"github.com/refbus/refbus/pkg/pgtest"
)

func TestMain(m *testing.M) { pgtest.Main(m) }
