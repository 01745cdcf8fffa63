package agency

import (
	"slices"

	"github.com/jackc/pgx/v5/pgxpool"
)

// What the caseworker UI (services/internal/web) reads of a service.

// Pool is the agency's store, for the UI's own queries (sessions, users,
// the filtered inbox).
func (s *Service) Pool() *pgxpool.Pool { return s.pool }

// Services are the services the network knows deadlines for, sorted: the
// choices a caseworker is offered when referring or forwarding.
func (s *Service) Services() []string {
	var out []string
	for k := range s.cfg.SLAs {
		if k != "" {
			out = append(out, k)
		}
	}
	slices.Sort(out)
	return out
}

// Others are the agencies of the network other than this one.
func (s *Service) Others() []string { return s.others() }
