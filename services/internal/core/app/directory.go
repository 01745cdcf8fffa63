package app

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/jackc/pgx/v5/pgtype"

	"github.com/refbus/refbus/services/internal/core/coredb"
	"github.com/refbus/refbus/services/internal/core/directory"
)

// Organizations are the organizations this node hosts, with their
// services; the first is its default.
func (a *App) Organizations() []directory.Organization { return a.cfg.Organizations }

// own returns the organization of this node with id.
func (a *App) own(id string) (directory.Organization, bool) {
	for _, o := range a.cfg.Organizations {
		if o.ID == id {
			return o, true
		}
	}
	return directory.Organization{}, false
}

// ownIDs lists the ids of this node's organizations, for messages.
func (a *App) ownIDs() string {
	ids := make([]string, len(a.cfg.Organizations))
	for i, o := range a.cfg.Organizations {
		ids[i] = o.ID
	}
	return strings.Join(ids, ", ")
}

type orgKey struct{}

// WithOrg returns ctx for a request made on behalf of organization org of
// this node: by one of its caseworkers, or a system of its own. Such a
// request sends referrals from org and sees org's referrals only. A
// request without one is the node's (its supervisors', its operators'):
// it sees every organization of the node.
func WithOrg(ctx context.Context, org string) context.Context {
	return context.WithValue(ctx, orgKey{}, org)
}

// OrgOf is the organization a request is made on behalf of; "" for the
// node as a whole.
func OrgOf(ctx context.Context) string {
	org, _ := ctx.Value(orgKey{}).(string)
	return org
}

// sees reports whether the request of ctx may see r: one made on behalf
// of an organization sees the referrals that organization sent or
// received.
func (a *App) sees(ctx context.Context, r coredb.Referral) bool {
	org := OrgOf(ctx)
	return org == "" || (r.ToAgency == a.self && r.ToOrg == org) || (r.FromAgency == a.self && r.FromOrg == org)
}

// senderOrg is the organization a new referral goes out from: the
// caller's, or for a request of the node the one it names (default: the
// node's first). Returns ErrForbidden or ErrInvalid.
func (a *App) senderOrg(ctx context.Context, given string) (string, error) {
	if org := OrgOf(ctx); org != "" {
		if given != "" && given != org {
			return "", fmt.Errorf("%w: you refer on behalf of %s, not of %s", ErrForbidden, org, given)
		}
		given = org
	}
	if given == "" {
		given = a.cfg.Organizations[0].ID
	} else if _, ok := a.own(given); !ok {
		return "", fmt.Errorf("%w: from_org %q is not an organization of this node (%s): it hosts %s", ErrInvalid, given, a.self, a.ownIDs())
	}
	return given, a.refersFor(ctx, given)
}

// refersFor refuses org as the referring organization when the network's
// registry does not have this node host it (the administrator moved it to
// another node): its receivers would refuse the referral. A registry that
// cannot be read now does not stop a referral; its receiver checks again.
func (a *App) refersFor(ctx context.Context, org string) error {
	if a.hosts == nil {
		return nil
	}
	if err := a.hosts(ctx, a.self, org); errors.Is(err, ErrNotHosted) {
		return fmt.Errorf("%w: %v: ask the network's administrator", ErrInvalid, err)
	}
	return nil
}

// listOrg is the organization whose referrals a list shows: the caller's,
// the one asked for, or none (NULL) for all of the node's. Returns
// ErrForbidden or ErrInvalid.
func (a *App) listOrg(ctx context.Context, asked string) (pgtype.Text, error) {
	if org := OrgOf(ctx); org != "" {
		if asked != "" && asked != org {
			return pgtype.Text{}, fmt.Errorf("%w: you see the referrals of %s only", ErrForbidden, org)
		}
		return pgtype.Text{String: org, Valid: true}, nil
	}
	if asked == "" {
		return pgtype.Text{}, nil
	}
	if _, ok := a.own(asked); !ok {
		return pgtype.Text{}, fmt.Errorf("%w: org %q is not an organization of this node (%s): it hosts %s", ErrInvalid, asked, a.self, a.ownIDs())
	}
	return pgtype.Text{String: asked, Valid: true}, nil
}

// organization finds the organization with id (named in the request's
// field) among those of the other nodes. Returns ErrInvalid.
func (a *App) organization(ctx context.Context, field, id string) (directory.Hosted, error) {
	if _, ok := a.own(id); ok {
		return directory.Hosted{}, fmt.Errorf("%w: %s %q is an organization of this node (%s): refer to an organization of another node", ErrInvalid, field, id, a.self)
	}
	h, err := a.dir.Organization(ctx, id)
	if errors.Is(err, directory.ErrNotTaking) {
		return h, fmt.Errorf("%w: %s %q: %v", ErrInvalid, field, id, err)
	}
	if errors.Is(err, directory.ErrNotListed) {
		return h, fmt.Errorf("%w: %s %q is not an organization of the network: the directory lists %s (GET /api/v1/directory)", ErrInvalid, field, id, a.someOrgs())
	}
	if err != nil {
		return h, err
	}
	if h.Node == a.self {
		return h, fmt.Errorf("%w: %s %q is an organization of this node (%s): refer to an organization of another node", ErrInvalid, field, id, a.self)
	}
	return h, nil
}

// someOrgs names a few of the other nodes' organizations, for a message.
func (a *App) someOrgs() string {
	const few = 8
	var ids []string
	for _, h := range a.Others() {
		ids = append(ids, h.Org.ID)
	}
	switch {
	case len(ids) == 0:
		return "no organization of another node yet"
	case len(ids) > few:
		return fmt.Sprintf("%s and %d more", strings.Join(ids[:few], ", "), len(ids)-few)
	}
	return strings.Join(ids, ", ")
}

// offered returns the organization with id, its node, and the deadlines
// of service there; ErrInvalid unless another node hosts it and it
// offers service.
func (a *App) offered(ctx context.Context, id, service string) (directory.Hosted, SLA, error) {
	h, err := a.organization(ctx, "to_org", id)
	if err != nil {
		return h, SLA{}, err
	}
	o, ok := h.Org.Offer(service)
	if !ok {
		offers := strings.Join(h.Org.ServiceNames(), ", ")
		if offers == "" {
			offers = "no service"
		}
		return h, SLA{}, fmt.Errorf("%w: %s does not offer the service %q; it offers %s (GET /api/v1/directory)", ErrInvalid, id, service, offers)
	}
	return h, a.slaOf(service, o), nil
}

// Directory lists every node's organizations and services, as the nodes
// published them.
func (a *App) Directory(ctx context.Context) ([]directory.Listing, error) { return a.dir.List(ctx) }

// Others are the organizations of the other nodes, as the directory
// listed them when it was last seen, by node: those a caseworker may
// refer to.
func (a *App) Others() []directory.Hosted {
	var out []directory.Hosted
	for _, l := range a.dir.Seen() {
		if l.Node == a.self {
			continue
		}
		for _, o := range l.Organizations {
			if h, ok := a.dir.Known(o.ID); ok && h.Node == l.Node { // not one another node claims first
				out = append(out, h)
			}
		}
	}
	return out
}

// OrgName is the name of the organization with id, of this node or as
// the directory lists it; "" when neither knows it.
func (a *App) OrgName(id string) string {
	if o, ok := a.own(id); ok {
		return o.Name
	}
	if h, ok := a.dir.Known(id); ok {
		return h.Org.Name
	}
	return ""
}

// Services are the services offered in the network, as the directory
// listed them when it was last seen, with this node's own, sorted: the
// choices a caseworker is offered when filtering.
func (a *App) Services() []string {
	out := make([]string, 0, 16)
	for _, o := range a.cfg.Organizations {
		out = append(out, o.ServiceNames()...)
	}
	for _, l := range a.dir.Seen() {
		for _, o := range l.Organizations {
			out = append(out, o.ServiceNames()...)
		}
	}
	slices.Sort(out)
	return slices.Compact(out)
}

// TakesPeopleIn reports whether service is one of this node's that takes
// people in (a shelter's): accepting a referral to it records a placement.
func (a *App) TakesPeopleIn(service string) bool {
	for _, org := range a.cfg.Organizations {
		if o, ok := org.Offer(service); ok && o.Beds > 0 {
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
	l := directory.Listing{Node: a.self, Kind: a.kind.Name(), Organizations: slices.Clone(a.cfg.Organizations), PublicKey: a.seal.publicKey(), SigningKey: a.cfg.SigningKey}
	if l.DayKeyID, l.DayKey, err = a.seal.today(ctx, a.cfg.KeyOfTheDay, false); err != nil {
		return err
	}
	for i, org := range l.Organizations {
		org.Services = slices.Clone(org.Services)
		for j, o := range org.Services {
			if free, ok := places[o.Name]; ok && o.Beds > 0 {
				free = max(free, 0)
				org.Services[j].FreeBeds = &free
			}
		}
		l.Organizations[i] = org
	}
	return a.dir.Publish(ctx, l)
}

// PublishListing puts this node's listing into the directory now: a node
// does it once before it serves, so others can refer to it at once.
func (a *App) PublishListing(ctx context.Context) error { return a.publishListing(ctx) }
