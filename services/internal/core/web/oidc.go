package web

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"
	"golang.org/x/oauth2"

	"github.com/refbus/refbus/services/internal/core/app"
)

// OIDCConfig signs people in through the agency's identity provider (the
// authorization code flow with PKCE). The provider says in the ID token
// which agency the person works for and in which role.
type OIDCConfig struct {
	Issuer       string
	ClientID     string
	ClientSecret string `json:"-"`
	// RedirectURL is this service's /ui/oidc/callback as the browser
	// reaches it.
	RedirectURL string
	// AgencyClaim, RoleClaim and OrgClaim name the ID token's claims
	// that carry the person's agency, role and organization (default
	// refbus_agency, refbus_role and refbus_org). A person with no
	// organization works for the node as a whole.
	AgencyClaim string
	RoleClaim   string
	OrgClaim    string
}

type oidcClient struct {
	cfg      OIDCConfig
	oauth    oauth2.Config
	verifier *oidc.IDTokenVerifier
}

func newOIDC(ctx context.Context, cfg OIDCConfig) (*oidcClient, error) {
	if cfg.AgencyClaim == "" {
		cfg.AgencyClaim = "refbus_agency"
	}
	if cfg.RoleClaim == "" {
		cfg.RoleClaim = "refbus_role"
	}
	if cfg.OrgClaim == "" {
		cfg.OrgClaim = "refbus_org"
	}
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	p, err := oidc.NewProvider(ctx, cfg.Issuer)
	if err != nil {
		return nil, fmt.Errorf("oidc provider %s: %w", cfg.Issuer, err)
	}
	return &oidcClient{
		cfg: cfg,
		oauth: oauth2.Config{
			ClientID: cfg.ClientID, ClientSecret: cfg.ClientSecret, RedirectURL: cfg.RedirectURL,
			Endpoint: p.Endpoint(), Scopes: []string{oidc.ScopeOpenID, "profile"},
		},
		verifier: p.Verifier(&oidc.Config{ClientID: cfg.ClientID}),
	}, nil
}

func (u *UI) oidcCookie() string { return "refbus_" + u.agency + "_oidc" }

// oidcLogin sends the browser to the provider, remembering the state, the
// nonce and the PKCE verifier in a short-lived cookie.
func (u *UI) oidcLogin(w http.ResponseWriter, r *http.Request) {
	if u.oidc == nil {
		u.errorPage(w, r, http.StatusNotFound, "error.not_found")
		return
	}
	state, nonce, verifier := randomString(), randomString(), oauth2.GenerateVerifier()
	c := u.cookie(u.oidcCookie(), state+"."+nonce+"."+verifier, time.Now().Add(10*time.Minute))
	c.Path = "/ui/oidc/"
	http.SetCookie(w, c)
	http.Redirect(w, r, u.oidc.oauth.AuthCodeURL(state, oidc.Nonce(nonce), oauth2.S256ChallengeOption(verifier)), http.StatusFound)
}

// oidcCallback takes the provider's answer: it exchanges the code, checks
// the ID token, its nonce and that the person works for this agency, and
// signs them in.
func (u *UI) oidcCallback(w http.ResponseWriter, r *http.Request) {
	if u.oidc == nil {
		u.errorPage(w, r, http.StatusNotFound, "error.not_found")
		return
	}
	c, err := r.Cookie(u.oidcCookie())
	parts := []string{}
	if err == nil {
		parts = strings.Split(c.Value, ".")
	}
	if len(parts) != 3 || r.URL.Query().Get("state") != parts[0] {
		u.render(w, r, http.StatusUnauthorized, "login", "", nil, "login.failed")
		return
	}
	gone := u.cookie(u.oidcCookie(), "", time.Time{})
	gone.Path = "/ui/oidc/"
	http.SetCookie(w, gone)
	claims, err := u.oidc.exchange(r.Context(), r.URL.Query().Get("code"), parts[1], parts[2])
	if err != nil {
		u.log.Info("oidc sign-in refused", "err", err)
		u.render(w, r, http.StatusUnauthorized, "login", "", nil, "login.failed")
		return
	}
	if claims.agency != u.agency || !slices.Contains(Roles, claims.role) {
		u.log.Info("oidc sign-in for another agency or role refused", "claimed_agency", claims.agency)
		u.errorPage(w, r, http.StatusForbidden, "error.other_agency")
		return
	}
	err = u.app.PutUser(r.Context(), app.User{Username: claims.username, Name: claims.name, Role: claims.role, Org: claims.org})
	if errors.Is(err, app.ErrInvalid) {
		u.log.Info("oidc sign-in for an organization this node does not host refused")
		u.errorPage(w, r, http.StatusForbidden, "error.forbidden")
		return
	}
	if err != nil {
		u.fail(w, r, err)
		return
	}
	if err := u.newSession(r.Context(), w, claims.username, claims.role); errors.Is(err, errDisabled) {
		u.log.Info("oidc sign-in of a disabled user refused")
		u.render(w, r, http.StatusForbidden, "login", "", nil, "users.login_disabled")
		return
	} else if err != nil {
		u.fail(w, r, err)
		return
	}
	http.Redirect(w, r, "/ui/inbox", http.StatusSeeOther)
}

type oidcClaims struct {
	username, name, agency, role, org string
}

func (o *oidcClient) exchange(ctx context.Context, code, nonce, verifier string) (oidcClaims, error) {
	tok, err := o.oauth.Exchange(ctx, code, oauth2.VerifierOption(verifier))
	if err != nil {
		return oidcClaims{}, fmt.Errorf("exchange code: %w", err)
	}
	raw, ok := tok.Extra("id_token").(string)
	if !ok {
		return oidcClaims{}, errors.New("no id_token in the token response")
	}
	idt, err := o.verifier.Verify(ctx, raw)
	if err != nil {
		return oidcClaims{}, fmt.Errorf("verify id token: %w", err)
	}
	if idt.Nonce != nonce {
		return oidcClaims{}, errors.New("id token nonce does not match")
	}
	var all map[string]any
	if err := idt.Claims(&all); err != nil {
		return oidcClaims{}, fmt.Errorf("read id token claims: %w", err)
	}
	str := func(k string) string { s, _ := all[k].(string); return s }
	c := oidcClaims{username: str("preferred_username"), name: str("name"), agency: str(o.cfg.AgencyClaim), role: str(o.cfg.RoleClaim), org: str(o.cfg.OrgClaim)}
	if c.username == "" {
		c.username = idt.Subject
	}
	// Namespaced, so an OIDC user can never take over a password user.
	c.username = "oidc:" + c.username
	return c, nil
}

func randomString() string {
	var b [24]byte
	_, _ = rand.Read(b[:])
	return base64.RawURLEncoding.EncodeToString(b[:])
}
