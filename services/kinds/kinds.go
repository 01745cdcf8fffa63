// Package kinds knows the four kinds of node by name, for the programs
// that run nodes of every kind in one process: the dev stack, the bench,
// and their tests. The core does not import it.
package kinds

import (
	"github.com/refbus/refbus/services/education"
	"github.com/refbus/refbus/services/health"
	"github.com/refbus/refbus/services/internal/core/kind"
	"github.com/refbus/refbus/services/ngo"
	"github.com/refbus/refbus/services/social"
)

// Names are the kinds, in the order a chain of help usually meets them.
var Names = []string{"health", "education", "social", "ngo"}

// New returns a new kind of the name, for one node; nil for none.
func New(name string) kind.Kind {
	switch name {
	case "health":
		return health.New()
	case "education":
		return education.New()
	case "social":
		return social.New()
	case "ngo":
		return ngo.New()
	}
	return nil
}
