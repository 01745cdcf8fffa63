package agency

import (
	"slices"

	"github.com/jackc/pgx/v5/pgxpool"
)

// What the caseworker UI (services/internal/web) reads of a service.

// Pool is the agency's store, for the UI's own queries (sessions, users,
// the filtered inbox).
func (s *Service) Pool() *pgxpool.Pool { return s.pool }

// Services are the services offered in the network, as the directory
// listed them when it was last seen, with the agency's own, sorted: the
// choices a caseworker is offered when referring, forwarding or filtering.
func (s *Service) Services() []string {
	out := make([]string, 0, 16)
	for _, o := range s.cfg.Services {
		out = append(out, o.Name)
	}
	s.dirMu.Lock()
	for _, l := range s.listings {
		for _, o := range l.Services {
			out = append(out, o.Name)
		}
	}
	s.dirMu.Unlock()
	slices.Sort(out)
	return slices.Compact(out)
}

// HasBeds reports whether service is one of this agency's that takes
// people in: accepting a referral to it records a placement.
func (s *Service) HasBeds(service string) bool {
	for _, o := range s.cfg.Services {
		if o.Name == service && o.Beds > 0 {
			return true
		}
	}
	return false
}

// Others are the agencies of the network other than this one.
func (s *Service) Others() []string { return s.others() }
