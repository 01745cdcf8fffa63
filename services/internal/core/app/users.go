package app

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgtype"

	"github.com/refbus/refbus/services/internal/core/coredb"
)

// Managing the node's users: what a supervisor does on the users page. A
// request made on behalf of one organization (WithOrg) manages that
// organization's users only, and cannot make or move a user out of it.

// Account is a user as the users page shows it.
type Account struct {
	Username string
	Name     string
	Role     string
	Org      string
	// Local: the user signs in with a password; otherwise through OIDC,
	// whose provider sets their role and organization at each sign-in.
	Local      bool
	DisabledAt *time.Time
	LastSignIn *time.Time
	CreatedAt  time.Time
}

func accountOf(u coredb.WebUser) Account {
	return Account{Username: u.Username, Name: u.DisplayName, Role: u.Role, Org: u.Org, Local: u.PasswordHash != "",
		DisabledAt: u.DisabledAt, LastSignIn: u.LastSignInAt, CreatedAt: u.CreatedAt}
}

// Users lists the users the request may manage, by name.
func (a *App) Users(ctx context.Context) ([]Account, error) {
	org := pgtype.Text{String: OrgOf(ctx), Valid: OrgOf(ctx) != ""}
	rows, err := coredb.New(a.pool).WebUserList(ctx, org)
	if err != nil {
		return nil, fmt.Errorf("list users: %w", err)
	}
	out := make([]Account, len(rows))
	for i, u := range rows {
		out[i] = accountOf(u)
	}
	return out, nil
}

// Account returns one user the request may manage. Returns ErrNotFound,
// ErrForbidden (a user of another organization).
func (a *App) Account(ctx context.Context, username string) (Account, error) {
	u, err := coredb.New(a.pool).WebUserGet(ctx, username)
	if isNoRows(err) {
		return Account{}, fmt.Errorf("%w: no user %q", ErrNotFound, username)
	}
	if err != nil {
		return Account{}, fmt.Errorf("get user: %w", err)
	}
	if org := OrgOf(ctx); org != "" && u.Org != org {
		return Account{}, fmt.Errorf("%w: %s is not a user of %s", ErrForbidden, username, org)
	}
	return accountOf(u), nil
}

// checkOrg says whether a request may give a user organization org.
func (a *App) checkOrg(ctx context.Context, org string) error {
	if mine := OrgOf(ctx); mine != "" && org != mine {
		if org == "" {
			return fmt.Errorf("%w: you manage the users of %s only: a user for the whole node is for a supervisor of the node", ErrForbidden, mine)
		}
		return fmt.Errorf("%w: you manage the users of %s only", ErrForbidden, mine)
	}
	if _, ok := a.own(org); org != "" && !ok {
		return fmt.Errorf("%w: %s is not an organization of this node: it hosts %s", ErrInvalid, org, a.ownIDs())
	}
	return nil
}

// CreateUser makes a local user with a password (its bcrypt hash). Returns
// ErrConflict (the name is taken), ErrInvalid (an organization the node
// does not host), ErrForbidden (another organization's, or the whole
// node's, asked on behalf of one organization).
func (a *App) CreateUser(ctx context.Context, u User) error {
	if err := a.checkOrg(ctx, u.Org); err != nil {
		return err
	}
	if u.PasswordHash == "" {
		return fmt.Errorf("%w: a local user needs a password", ErrInvalid)
	}
	err := coredb.New(a.pool).WebUserInsert(ctx, coredb.WebUserInsertParams{Username: u.Username, DisplayName: u.Name, Role: u.Role, PasswordHash: u.PasswordHash, Org: u.Org})
	if pe := (*pgconn.PgError)(nil); errors.As(err, &pe) && pe.Code == "23505" {
		return fmt.Errorf("%w: the user name %s is taken", ErrConflict, u.Username)
	}
	if err != nil {
		return fmt.Errorf("create user %s: %w", u.Username, err)
	}
	return nil
}

// changeUser changes the user username the request may manage, in a
// transaction that holds the user's row. by is who asks: a user may not
// change themselves this way (ErrInvalid), so a supervisor cannot lock
// themselves out.
func (a *App) changeUser(ctx context.Context, username, by string, fn func(q *coredb.Queries, u coredb.WebUser) error) error {
	if username == by {
		return fmt.Errorf("%w: you cannot do this to your own account: ask another supervisor", ErrInvalid)
	}
	return pgx.BeginFunc(ctx, a.pool, func(tx pgx.Tx) error {
		q := coredb.New(tx)
		u, err := q.WebUserGetForUpdate(ctx, username)
		if isNoRows(err) {
			return fmt.Errorf("%w: no user %q", ErrNotFound, username)
		}
		if err != nil {
			return fmt.Errorf("get user: %w", err)
		}
		if org := OrgOf(ctx); org != "" && u.Org != org {
			return fmt.Errorf("%w: %s is not a user of %s", ErrForbidden, username, org)
		}
		return fn(q, u)
	})
}

// endSessions signs the user out everywhere.
func endSessions(ctx context.Context, q *coredb.Queries, username string) error {
	if err := q.WebSessionDeleteByUser(ctx, username); err != nil {
		return fmt.Errorf("end sessions of %s: %w", username, err)
	}
	return nil
}

// DisableUser disables a user on behalf of by: they can no longer sign in,
// their sessions end at once, and bearer tokens with their name as subject
// are refused. Returns ErrNotFound, ErrForbidden, ErrInvalid (by
// themselves).
func (a *App) DisableUser(ctx context.Context, username, by string) error {
	return a.changeUser(ctx, username, by, func(q *coredb.Queries, u coredb.WebUser) error {
		now := a.cfg.Now()
		if err := q.WebUserSetDisabled(ctx, coredb.WebUserSetDisabledParams{Username: username, DisabledAt: &now}); err != nil {
			return fmt.Errorf("disable user: %w", err)
		}
		return endSessions(ctx, q, username)
	})
}

// EnableUser lets a disabled user sign in again. Returns as DisableUser.
func (a *App) EnableUser(ctx context.Context, username, by string) error {
	return a.changeUser(ctx, username, by, func(q *coredb.Queries, u coredb.WebUser) error {
		if err := q.WebUserSetDisabled(ctx, coredb.WebUserSetDisabledParams{Username: username}); err != nil {
			return fmt.Errorf("enable user: %w", err)
		}
		return nil
	})
}

// SetPassword gives a local user a new password (its bcrypt hash) and
// ends their sessions. Returns as DisableUser, and ErrInvalid for a user
// who signs in through OIDC, whose password is the provider's.
func (a *App) SetPassword(ctx context.Context, username, by, hash string) error {
	return a.changeUser(ctx, username, by, func(q *coredb.Queries, u coredb.WebUser) error {
		if u.PasswordHash == "" {
			return fmt.Errorf("%w: %s signs in through the organization's identity provider: its password is set there", ErrInvalid, username)
		}
		if err := q.WebUserSetPassword(ctx, coredb.WebUserSetPasswordParams{Username: username, PasswordHash: hash}); err != nil {
			return fmt.Errorf("set password: %w", err)
		}
		return endSessions(ctx, q, username)
	})
}

// SetRole changes a local user's role and organization. A session keeps
// the role it began with, so a changed role ends the user's sessions: the
// new one holds from their next sign-in. Returns as DisableUser, and
// ErrInvalid for an OIDC user (their provider sets both at each sign-in)
// or an organization the node does not host.
func (a *App) SetRole(ctx context.Context, username, by, role, org string) error {
	if err := a.checkOrg(ctx, org); err != nil {
		return err
	}
	return a.changeUser(ctx, username, by, func(q *coredb.Queries, u coredb.WebUser) error {
		if u.PasswordHash == "" {
			return fmt.Errorf("%w: %s signs in through the organization's identity provider, which sets their role and organization", ErrInvalid, username)
		}
		if err := q.WebUserSetRole(ctx, coredb.WebUserSetRoleParams{Username: username, Role: role, Org: org}); err != nil {
			return fmt.Errorf("set role: %w", err)
		}
		if role == u.Role {
			return nil
		}
		return endSessions(ctx, q, username)
	})
}

// SignedIn records that a user signed in, for the users page.
func (a *App) SignedIn(ctx context.Context, username string) error {
	if err := coredb.New(a.pool).WebUserSignedIn(ctx, username); err != nil {
		return fmt.Errorf("record sign-in: %w", err)
	}
	return nil
}

// UserDisabled reports whether username is a user of this node who is
// disabled; a name that is no user (an agency system's) is not.
func (a *App) UserDisabled(ctx context.Context, username string) (bool, error) {
	d, err := coredb.New(a.pool).WebUserDisabled(ctx, username)
	if isNoRows(err) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("read user: %w", err)
	}
	return d, nil
}
