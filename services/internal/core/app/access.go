package app

import (
	"context"
	"fmt"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/pgtype"

	"github.com/refbus/refbus/services/internal/core/coredb"
)

// The case access log: who opened which case, and when, for the
// auditors. It records who looked, never what they saw.

// The ways a case is opened.
const (
	ViaUI  = "ui"
	ViaAPI = "api"
)

type userKey struct{}

// WithUser returns ctx for a request made by username: a person signed in
// or the subject of an agency system's token, whom the access log names.
func WithUser(ctx context.Context, username string) context.Context {
	return context.WithValue(ctx, userKey{}, username)
}

// UserOf is who makes the request of ctx; "" if no one said.
func UserOf(ctx context.Context) string {
	u, _ := ctx.Value(userKey{}).(string)
	return u
}

// LogCaseAccess records that who opened case caseID (through its referral
// referralID, or uuid.Nil for the case as a whole), via ViaUI or ViaAPI,
// for the organization the request is made on behalf of. One insert: a
// page that shows a case calls it each time it is opened.
func (a *App) LogCaseAccess(ctx context.Context, caseID, referralID uuid.UUID, who, via string) error {
	var ref *uuid.UUID
	if referralID != uuid.Nil {
		ref = &referralID
	}
	err := coredb.New(a.pool).CaseAccessInsert(ctx, coredb.CaseAccessInsertParams{CaseID: caseID, ReferralID: ref, Username: who, Org: OrgOf(ctx), Via: via})
	if err != nil {
		return fmt.Errorf("log case access: %w", err)
	}
	return nil
}

// CaseAccess is one opening of a case.
type CaseAccess struct {
	ID     int64      `json:"id" doc:"The row's number, for paging (before_id)."`
	CaseID uuid.UUID  `json:"case_id"`
	Ref    *uuid.UUID `json:"referral_id,omitempty" doc:"The referral opened; absent when the case as a whole was read."`
	User   string     `json:"username" doc:"The user, or the subject of the agency system's token."`
	Org    string     `json:"org,omitempty" doc:"The organization of this node they work for; absent for the node's own people."`
	Via    string     `json:"via" enum:"ui,api"`
	At     time.Time  `json:"at"`
}

// AccessFilter narrows the access log; zero values do not narrow.
type AccessFilter struct {
	CaseID   uuid.UUID
	Username string
	// BeforeAt and BeforeID page backwards: rows older than the pair.
	BeforeAt *time.Time
	BeforeID int64
	Limit    int
}

// AccessLog lists who opened which case, newest first. A request on
// behalf of one organization sees its own people's openings only.
func (a *App) AccessLog(ctx context.Context, f AccessFilter) ([]CaseAccess, error) {
	p := coredb.CaseAccessListParams{
		Username: pgtype.Text{String: f.Username, Valid: f.Username != ""},
		Org:      pgtype.Text{String: OrgOf(ctx), Valid: OrgOf(ctx) != ""},
		BeforeAt: f.BeforeAt, BeforeID: f.BeforeID, MaxRows: int32(f.Limit),
	}
	if f.CaseID != uuid.Nil {
		p.CaseID = &f.CaseID
	}
	rows, err := coredb.New(a.pool).CaseAccessList(ctx, p)
	if err != nil {
		return nil, fmt.Errorf("list case access: %w", err)
	}
	out := make([]CaseAccess, len(rows))
	for i, r := range rows {
		out[i] = CaseAccess{ID: r.ID, CaseID: r.CaseID, Ref: r.ReferralID, User: r.Username, Org: r.Org, Via: r.Via, At: r.At}
	}
	return out, nil
}
