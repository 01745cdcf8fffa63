package nodetest

import (
	"context"

	"github.com/refbus/refbus/pkg/pgmigrate"
	"github.com/refbus/refbus/schemas"
	"github.com/refbus/refbus/services/internal/core/directory"
	"github.com/refbus/refbus/services/internal/core/kind"
)

// Plain is a kind with no work records and no tables of its own, for tests
// of what every node does whatever its kind.
type Plain struct{ kind.Base }

// PlainKind is a plain kind named name whose nodes offer offers (by
// default one service, "help").
func PlainKind(name string, offers ...directory.Offer) *Plain {
	if len(offers) == 0 {
		offers = []directory.Offer{{Name: "help", Title: "Help", Eligibility: "families", Languages: []string{"ru"}, Area: "Almaty"}}
	}
	return &Plain{kind.Base{Kind: name, Line: pgmigrate.Line{Schema: name}, Defaults: offers}}
}

// RecordWork records nothing: a plain node has no work records.
func (p *Plain) RecordWork(context.Context, kind.DB, kind.Referral, *schemas.Work) error { return nil }

// Org is an organization with id, named after it, offering offers.
func Org(id string, offers ...directory.Offer) directory.Organization {
	return directory.Organization{ID: id, Name: id, Services: offers}
}
