// Package kind is the seam between the core and a kind of node: what
// health, education, social or an NGO adds to the referral lifecycle,
// consent, deadlines, directory, API and UI that every node shares.
//
// A kind owns its work records (the schemas.Work fields it names in
// Records) and the tables that keep them, in a Postgres schema of its own
// (Migrations); it checks its records, and it acts on a referral when it
// is received, accepted and ended. The core calls it inside the
// transaction of the change it is about, and knows no kind by name: each
// kind's command hands its Kind to core.Main.
package kind

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/refbus/refbus/pkg/pgmigrate"
	"github.com/refbus/refbus/schemas"
	"github.com/refbus/refbus/services/internal/core/directory"
)

// Kind is one kind of node. Embed Base for its name, line, records and
// offers, and for the hooks a kind does not need.
type Kind interface {
	// Name is the kind's name (health, education, social, ngo): the
	// Postgres schema of its tables, and a node's name unless configured.
	Name() string
	// Migrations is the kind's migration line, in the schema Name.
	Migrations() pgmigrate.Line
	// Offers are the services a node of this kind offers unless its
	// operators configure its organizations: those of the one
	// organization it then hosts.
	Offers() []directory.Offer
	// Records names the work records a node of this kind makes, as
	// schemas.Work names them ("screening"). A node records no others.
	Records() []string

	// Open is called once when a node starts.
	Open(ctx context.Context, db DB, n Node) error
	// CheckWork says what is wrong with work this node is about to
	// record, before anything is written. Returns errors wrapping
	// ErrInvalid.
	CheckWork(w *schemas.Work) error
	// RecordWork keeps w, this node's own work on r, in the kind's tables.
	// Returns errors wrapping ErrInvalid or ErrConflict for a caller's
	// mistake.
	RecordWork(ctx context.Context, db DB, r Referral, w *schemas.Work) error
	// Accepting is asked before this node accepts r with w (nil when the
	// accept carries no work). An error wrapping ErrInvalid refuses it.
	Accepting(ctx context.Context, db DB, r Referral, w *schemas.Work) error
	// Ended is told that a referral this node received has ended
	// (completed, declined, failed, cancelled or forwarded).
	Ended(ctx context.Context, db DB, r Referral) error
	// Places are the free places of the services that take people in, by
	// service, for the directory; nil when none does.
	Places(ctx context.Context, db DB) (map[string]int, error)
}

// Node is what a kind is told of the node it runs in.
type Node struct {
	Name string
	// Organizations are the organizations the node hosts, with the
	// services each offers. A service that takes people in is offered by
	// one of them at most, so a kind may count places by service.
	Organizations []directory.Organization
	// Now is the node's clock (tests move it).
	Now func() time.Time
}

// Receiver is a kind that acts when its node receives a referral. The
// core tells it once per referral, in the transaction that records it (a
// repeat of the request is not recorded again, nor told); a Decline
// declines the referral at once, so its sender can look elsewhere. Telling
// it costs the transaction a read, so the core first asks Wants, which
// must answer without I/O; a kind with nothing to do there does not
// implement Receiver at all.
type Receiver interface {
	// Wants reports whether the kind acts on receiving r (a shelter: a
	// referral to a service that takes people in).
	Wants(r Referral) bool
	Received(ctx context.Context, db DB, r Referral) (*Decline, error)
}

// Eraser is a kind whose records say something about the people of its
// referrals (findings, conclusions, reasons). Erase empties that in the
// records of referrals ids, in the caller's transaction, when a person is
// erased (at the node that erases and at the other party); what the kind
// counts by (a bed taken, a decision made) stays. A revoked consent
// leaves a node's own records as they are.
type Eraser interface {
	Erase(ctx context.Context, db DB, ids []uuid.UUID) error
}

// Referral is what a kind sees of a referral: enough to file its records
// and to act, nothing of the family.
type Referral struct {
	ID      uuid.UUID
	CaseID  uuid.UUID
	From    string // the node that sent it
	To      string // the node it was sent to
	Service string
}

// Decline is an automatic decline: its reason code and reason.
type Decline struct {
	ReasonCode string
	Reason     string
}

// DB is a transaction, or a batch that commits with one: what sqlc's
// generated code takes.
type DB interface {
	Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error)
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
}

// Errors a kind returns for a caller's mistake; the core answers them as
// its own (422 and 409 problems on HTTP). The message after the sentinel
// is shown to the caseworker.
var (
	ErrInvalid  = errors.New("invalid request")
	ErrConflict = errors.New("conflict")
)

// Date reads a day a caller gave in field (YYYY-MM-DD). Returns an error
// wrapping ErrInvalid that names the field.
func Date(field, s string) (time.Time, error) {
	t, err := time.Parse(time.DateOnly, s)
	if err != nil {
		return t, fmt.Errorf("%w: %s %q is not a date (YYYY-MM-DD)", ErrInvalid, field, s)
	}
	return t, nil
}

// Base is what every kind says of itself, and a kind with no effects and
// no checks beyond the core's: embed it, fill it in, and implement
// RecordWork and the hooks the kind needs.
type Base struct {
	Kind     string            // the kind's name (Name)
	Line     pgmigrate.Line    // its migration line (Migrations)
	Work     []string          // its work records (Records)
	Defaults []directory.Offer // its default offers (Offers)
}

// Name is the kind's name.
func (b Base) Name() string { return b.Kind }

// Migrations is the kind's migration line.
func (b Base) Migrations() pgmigrate.Line { return b.Line }

// Records names the kind's work records.
func (b Base) Records() []string { return b.Work }

// Offers are the kind's default offers.
func (b Base) Offers() []directory.Offer { return b.Defaults }

// Open does nothing.
func (Base) Open(context.Context, DB, Node) error { return nil }

// CheckWork accepts any work of the kind's records.
func (Base) CheckWork(*schemas.Work) error { return nil }

// Accepting accepts.
func (Base) Accepting(context.Context, DB, Referral, *schemas.Work) error { return nil }

// Ended does nothing.
func (Base) Ended(context.Context, DB, Referral) error { return nil }

// Places says no service takes people in.
func (Base) Places(context.Context, DB) (map[string]int, error) { return nil, nil }
