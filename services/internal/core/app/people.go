package app

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgtype"

	"github.com/google/uuid"

	"github.com/refbus/refbus/pkg/inbox"
	"github.com/refbus/refbus/pkg/outbox"
	"github.com/refbus/refbus/services/internal/core/coredb"
)

// What the caseworker UI reads and writes besides referrals: its users,
// their sessions, the filtered lists and the mark that tells it something
// changed.

// User is a person who may sign in to this node's UI.
type User struct {
	Username string
	Name     string
	Role     string
	// Org is the organization of this node the user works for, whose
	// referrals alone they see; empty for the node's own people, who see
	// every organization's.
	Org string
	// PasswordHash is bcrypt; empty for people who sign in through OIDC.
	PasswordHash string
	Lang         string
	// Disabled: a supervisor disabled the user, who may not sign in.
	Disabled bool
}

// PutUser creates a user or changes its name, role, organization and
// password hash; a language the user chose is kept. Returns ErrInvalid
// for an organization this node does not host.
func (a *App) PutUser(ctx context.Context, u User) error {
	if _, ok := a.own(u.Org); u.Org != "" && !ok {
		return fmt.Errorf("%w: user %s: %s is not an organization of this node (%s): it hosts %s", ErrInvalid, u.Username, u.Org, a.self, a.ownIDs())
	}
	err := coredb.New(a.pool).WebUserUpsert(ctx, coredb.WebUserUpsertParams{Username: u.Username, DisplayName: u.Name, Role: u.Role, PasswordHash: u.PasswordHash, Org: u.Org})
	if err != nil {
		return fmt.Errorf("put user %s: %w", u.Username, err)
	}
	return nil
}

// UserByName returns a user. Returns ErrNotFound.
func (a *App) UserByName(ctx context.Context, username string) (User, error) {
	u, err := coredb.New(a.pool).WebUserGet(ctx, username)
	if isNoRows(err) {
		return User{}, fmt.Errorf("%w: no user %q", ErrNotFound, username)
	}
	if err != nil {
		return User{}, fmt.Errorf("get user: %w", err)
	}
	return User{Username: u.Username, Name: u.DisplayName, Role: u.Role, Org: u.Org, PasswordHash: u.PasswordHash, Lang: u.Lang, Disabled: u.DisabledAt != nil}, nil
}

// SetLanguage keeps the language a user chose.
func (a *App) SetLanguage(ctx context.Context, username, lang string) error {
	if err := coredb.New(a.pool).WebUserSetLang(ctx, coredb.WebUserSetLangParams{Username: username, Lang: lang}); err != nil {
		return fmt.Errorf("set language: %w", err)
	}
	return nil
}

// Session is a signed-in browser, with its user.
type Session struct {
	Username  string
	Role      string
	Name      string
	Lang      string
	Org       string
	ExpiresAt time.Time
}

// StartSession records a session by the hash of its token.
func (a *App) StartSession(ctx context.Context, tokenHash []byte, username, role string, expires time.Time) error {
	q := coredb.New(a.pool)
	if err := q.WebSessionInsert(ctx, coredb.WebSessionInsertParams{TokenHash: tokenHash, Username: username, Role: role, ExpiresAt: expires}); err != nil {
		return fmt.Errorf("start session: %w", err)
	}
	// Sessions that ran out go now and then, with a new one.
	if err := q.WebSessionDeleteExpired(ctx); err != nil {
		a.log.Warn("delete expired sessions", "err", err)
	}
	return nil
}

// SessionByToken returns the live session with the token's hash. Returns
// ErrNotFound when there is none or it ran out.
func (a *App) SessionByToken(ctx context.Context, tokenHash []byte) (Session, error) {
	s, err := coredb.New(a.pool).WebSessionGet(ctx, tokenHash)
	if isNoRows(err) {
		return Session{}, fmt.Errorf("%w: no live session", ErrNotFound)
	}
	if err != nil {
		return Session{}, fmt.Errorf("get session: %w", err)
	}
	return Session{Username: s.Username, Role: s.Role, Name: s.DisplayName, Lang: s.Lang, Org: s.Org, ExpiresAt: s.ExpiresAt}, nil
}

// EndSession signs a session out.
func (a *App) EndSession(ctx context.Context, tokenHash []byte) error {
	if err := coredb.New(a.pool).WebSessionDelete(ctx, tokenHash); err != nil {
		return fmt.Errorf("end session: %w", err)
	}
	return nil
}

// Filter narrows a list of referrals; zero values do not narrow.
type Filter struct {
	// Org is one of this node's organizations (the caller's own, for a
	// caller of one).
	Org         string
	Status      string
	Service     string
	OverdueOnly bool
	// From and To bound the creation time: From <= created_at < To.
	From, To *time.Time
	// Before pages backwards: rows older than (BeforeAt, BeforeID).
	BeforeAt *time.Time
	BeforeID uuid.UUID
	Limit    int
}

// Count is how many referrals of a list are in one status.
type Count struct {
	Status  string
	N       int64
	Overdue int64
}

// Page is a filtered list of referrals with the list's counts by status,
// read from one snapshot so they agree.
type Page struct {
	Referrals []Referral
	Counts    []Count
}

// Incoming and Outgoing name the list a Page is of.
const (
	Incoming = "inbox"
	Outgoing = "sent"
)

// ListPage reads a page of the node's incoming (Incoming) or outgoing
// (Outgoing) referrals, newest first: of the caller's organization, for a
// caller of one. Returns ErrForbidden or ErrInvalid for another org.
func (a *App) ListPage(ctx context.Context, list string, f Filter) (Page, error) {
	org, err := a.listOrg(ctx, f.Org)
	if err != nil {
		return Page{}, err
	}
	p := coredb.WebInboxParams{
		Agency: a.self, Org: org, OverdueOnly: f.OverdueOnly, FromAt: f.From, ToAt: f.To,
		BeforeAt: f.BeforeAt, BeforeID: f.BeforeID, MaxRows: int32(f.Limit),
	}
	if f.Status != "" {
		p.Status = pgtype.Text{String: f.Status, Valid: true}
	}
	if f.Service != "" {
		p.Service = pgtype.Text{String: f.Service, Valid: true}
	}
	side := "in"
	if list != Incoming {
		side = "out"
	}
	var page Page
	err = pgx.BeginTxFunc(ctx, a.pool, pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly}, func(tx pgx.Tx) error {
		q := coredb.New(tx)
		cs, err := q.ListCounts(ctx, coredb.ListCountsParams{Agency: a.self, Side: side, Org: org})
		if err != nil {
			return err
		}
		var match int64
		page.Counts, match = sumCounts(cs, f)
		// The counts say how many rows the filters can find (the dates
		// only narrow it): with none, nothing is read; with fewer than a
		// page, the read stops at the last instead of walking on to the
		// oldest referral.
		if match == 0 {
			return nil
		}
		p.MaxRows = int32(min(int64(f.Limit), match))
		// The page is one list index read in order from its newest end
		// and stopped at its LIMIT, whatever the statistics of the day
		// say: planned for the filters given (a NULL filter drops out of
		// the plan), never a scan of the whole table or a sort of it. (At
		// the cost those plans are given when disabled, JIT would compile
		// the query first: off.)
		if _, err := tx.Exec(ctx, "SET LOCAL plan_cache_mode = force_custom_plan; SET LOCAL enable_seqscan = off; SET LOCAL enable_bitmapscan = off; SET LOCAL jit = off"); err != nil {
			return err
		}
		var rs []coredb.Referral
		if list == Incoming {
			rs, err = q.WebInbox(ctx, p)
		} else {
			rs, err = q.WebSent(ctx, coredb.WebSentParams(p))
		}
		page.Referrals = a.referrals(ctx, rs)
		return err
	})
	if err != nil {
		return Page{}, fmt.Errorf("list %s: %w", list, err)
	}
	return page, nil
}

// Mark changes whenever a referral here may have changed: every change
// comes with an event this node sent or one it received.
type Mark struct {
	Sent     int64
	Received time.Time
}

// ChangeMark reads the mark now.
func (a *App) ChangeMark(ctx context.Context) (Mark, error) {
	sent, err := outbox.LastSeq(ctx, a.pool)
	if err != nil {
		return Mark{}, err
	}
	received, err := inbox.LastReceived(ctx, a.pool)
	if err != nil {
		return Mark{}, err
	}
	return Mark{Sent: sent, Received: received}, nil
}

// Rejections lists the events this node refused, newest first.
func (a *App) Rejections(ctx context.Context, limit int) ([]inbox.Rejection, error) {
	return inbox.Rejections(ctx, a.pool, limit)
}

func isNoRows(err error) bool { return errors.Is(err, pgx.ErrNoRows) }
