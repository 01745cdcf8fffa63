package app

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/refbus/refbus/services/internal/core/directory"
)

// listed returns ErrInvalid unless node is in the directory.
func (a *App) listed(ctx context.Context, node string) error {
	_, err := a.dir.Lookup(ctx, node)
	if errors.Is(err, directory.ErrNotListed) {
		return fmt.Errorf("%w: %s is not a node of the network: the directory lists %s (GET /api/v1/directory)", ErrInvalid, node, strings.Join(a.Nodes(), ", "))
	}
	return err
}

// offered returns the deadlines of service at node, or ErrInvalid unless
// node offers it.
func (a *App) offered(ctx context.Context, node, service string) (SLA, error) {
	l, err := a.dir.Lookup(ctx, node)
	if errors.Is(err, directory.ErrNotListed) {
		return SLA{}, fmt.Errorf("%w: to_agency %q is not a node of the network: the directory lists %s (GET /api/v1/directory)", ErrInvalid, node, strings.Join(a.Nodes(), ", "))
	}
	if err != nil {
		return SLA{}, err
	}
	o, ok := l.Offer(service)
	if !ok {
		var names []string
		for _, o := range l.Services {
			names = append(names, o.Name)
		}
		return SLA{}, fmt.Errorf("%w: %s does not offer the service %q; it offers %s (GET /api/v1/directory)", ErrInvalid, node, service, strings.Join(names, ", "))
	}
	return a.slaOf(service, o), nil
}

// Directory lists every node's services, as the nodes published them.
func (a *App) Directory(ctx context.Context) ([]directory.Listing, error) { return a.dir.List(ctx) }

// Nodes are the other nodes of the network, as the directory lists them.
func (a *App) Nodes() []string {
	var out []string
	for _, l := range a.dir.Seen() {
		if l.Agency != a.self {
			out = append(out, l.Agency)
		}
	}
	return out
}

// Services are the services offered in the network, as the directory
// listed them when it was last seen, with this node's own, sorted: the
// choices a caseworker is offered when referring, forwarding or filtering.
func (a *App) Services() []string {
	out := make([]string, 0, 16)
	for _, o := range a.cfg.Offers {
		out = append(out, o.Name)
	}
	for _, l := range a.dir.Seen() {
		for _, o := range l.Services {
			out = append(out, o.Name)
		}
	}
	slices.Sort(out)
	return slices.Compact(out)
}

// TakesPeopleIn reports whether service is one of this node's that takes
// people in (a shelter's): accepting a referral to it records a placement.
func (a *App) TakesPeopleIn(service string) bool {
	for _, o := range a.cfg.Offers {
		if o.Name == service && o.Beds > 0 {
			return true
		}
	}
	return false
}

// publishListing puts this node's listing, with its free places now, into
// the directory if it changed since the last time.
func (a *App) publishListing(ctx context.Context) error {
	places, err := a.kind.Places(ctx, a.pool)
	if err != nil {
		return fmt.Errorf("read free places: %w", err)
	}
	l := directory.Listing{Agency: a.self, Services: slices.Clone(a.cfg.Offers), PublicKey: a.seal.publicKey(), SigningKey: a.cfg.SigningKey}
	for i, o := range l.Services {
		if free, ok := places[o.Name]; ok && o.Beds > 0 {
			free = max(free, 0)
			l.Services[i].FreeBeds = &free
		}
	}
	return a.dir.Publish(ctx, l)
}

// PublishListing puts this node's listing into the directory now: a node
// does it once before it serves, so others can refer to it at once.
func (a *App) PublishListing(ctx context.Context) error { return a.publishListing(ctx) }
