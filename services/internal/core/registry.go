package core

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/nats-io/nkeys"

	"github.com/refbus/refbus/services/internal/core/app"
	"github.com/refbus/refbus/services/internal/core/directory"
	"github.com/refbus/refbus/services/internal/network"
)

// openRegistry reads the network's registry, trusting the anchor, and
// checks that it holds this node, active, with the keys it was issued.
func (n *Node) openRegistry(ctx context.Context, kv jetstream.KeyValue) (*network.Registry, error) {
	reg, err := network.NewRegistry(kv, n.cfg.Anchor, n.log)
	if err != nil {
		return nil, err
	}
	if err := reg.Load(ctx); err != nil {
		return nil, err
	}
	self, err := reg.Lookup(n.cfg.Node)
	if err != nil {
		return nil, fmt.Errorf("%w: the administrator adds it with refbus-admin node add %s", err, n.cfg.Node)
	}
	if self.Status != network.Active {
		return nil, fmt.Errorf("the network's registry has node %s %s since %s: ask its administrator (refbus-admin node resume %s)", self.Node, self.Status, self.Since.Format("2006-01-02 15:04"), self.Node)
	}
	if self.SigningKey != n.cfg.signingKey() {
		return nil, fmt.Errorf("the registry holds another signing key for node %s than REFBUS_SIGNING_SEED's: use the node's bundle", self.Node)
	}
	if len(n.cfg.Organizations) == 0 {
		for _, id := range self.Organizations {
			n.cfg.Organizations = append(n.cfg.Organizations, directory.Organization{ID: id, Name: id, Services: n.kind.Offers()})
		}
		if err := checkOrganizations(n.cfg.Organizations); err != nil {
			return nil, fmt.Errorf("the organizations the registry gives node %s, each offering its kind's services: %w: say what each offers in REFBUS_ORGS", self.Node, err)
		}
	}
	for _, o := range n.cfg.Organizations {
		if !self.Hosts(o.ID) {
			return nil, fmt.Errorf("the network's registry does not have node %s host the organization %s (REFBUS_ORGS), only %s: ask its administrator", self.Node, o.ID, strings.Join(self.Organizations, ", "))
		}
	}
	return reg, nil
}

// listingCodec signs this node's listing with its signing key, and reads
// another's only if it is signed with the key the registry holds for that
// node, the node is active, and it lists only organizations the registry
// says it hosts, with the sealing key the registry holds.
func (n *Node) listingCodec() (encode func(directory.Listing) ([]byte, error), decode func(string, []byte) (directory.Listing, error)) {
	encode = func(l directory.Listing) ([]byte, error) {
		kp, err := nkeys.FromSeed(n.cfg.SigningSeed)
		if err != nil {
			return nil, err
		}
		defer kp.Wipe()
		return network.Sign(kp, l)
	}
	decode = func(node string, b []byte) (directory.Listing, error) {
		var l directory.Listing
		e, err := n.reg.Lookup(node)
		if err != nil {
			return l, err
		}
		if e.Status != network.Active {
			return l, fmt.Errorf("node %s is %s", node, e.Status)
		}
		if err := network.Verify(e.SigningKey, b, &l); err != nil {
			return l, err
		}
		if l.Node != node {
			return l, fmt.Errorf("the listing under %s names node %q", node, l.Node)
		}
		for _, o := range l.Organizations {
			if !e.Hosts(o.ID) {
				return l, fmt.Errorf("the listing of %s has the organization %s, which the registry does not say it hosts", node, o.ID)
			}
		}
		if l.PublicKey != e.SealingKey {
			return l, fmt.Errorf("the listing of %s gives another sealing key than the registry holds", node)
		}
		return l, nil
	}
	return encode, decode
}

// hosts says whether the registry has node host org: nil if it does, an
// error wrapping app.ErrNotHosted with the reason if it does not, another
// error if the registry could not be read. A refusal is final, so before
// it the entry is read again from the bucket: a node just given an
// organization is not refused because this node's watch lags.
func (n *Node) hosts(ctx context.Context, node, org string) error {
	if e, err := n.reg.Lookup(node); err == nil && e.Hosts(org) {
		return nil
	}
	e, err := n.reg.Reread(ctx, node)
	switch {
	case errors.Is(err, network.ErrNotRegistered):
		return fmt.Errorf("%w: %w", app.ErrNotHosted, err)
	case err != nil:
		return err
	case !e.Hosts(org):
		return fmt.Errorf("%w: the network's registry has %s host %s, not %s", app.ErrNotHosted, node, strings.Join(e.Organizations, ", "), org)
	}
	return nil
}

// tokenRevoked says whether the registry's entry of this node lists the
// bearer token id as revoked.
func (n *Node) tokenRevoked(id string) bool {
	e, err := n.reg.Lookup(n.cfg.Node)
	return err == nil && slices.Contains(e.RevokedTokens, id)
}

// active says whether node is active in the registry.
func (n *Node) active(node string) error {
	e, err := n.reg.Lookup(node)
	if err != nil {
		return err
	}
	if e.Status != network.Active {
		return fmt.Errorf("node %s is %s since %s", node, e.Status, e.Since.UTC().Format(time.RFC3339))
	}
	return nil
}
