package web

import (
	"cmp"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"net"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/google/uuid"
	"golang.org/x/crypto/bcrypt"
	"golang.org/x/time/rate"

	"github.com/refbus/refbus/services/internal/core/app"
)

// The roles of an agency's people and systems.
const (
	// RoleCaseworker works referrals: reads them and makes every move.
	RoleCaseworker = "caseworker"
	// RoleSupervisor is a caseworker who may also operate the service
	// (re-drive dead letters).
	RoleSupervisor = "supervisor"
	// RoleAuditor reads everything of the agency and changes nothing.
	RoleAuditor = "auditor"
)

// Roles are every role, from the most to the least able.
var Roles = []string{RoleSupervisor, RoleCaseworker, RoleAuditor}

// Principal is who makes a request: a person signed in to the UI or an
// agency system with a bearer token.
type Principal struct {
	Username string
	Name     string
	Agency   string
	// Org is the organization of the agency's node the principal works
	// for, whose referrals alone it sees; empty for the node as a whole.
	Org  string
	Role string
	Lang string
	// Session is the hash of the session token; nil for bearer tokens.
	Session []byte
}

type principalKey struct{}

// PrincipalFrom returns who makes the request, if anyone signed in.
func PrincipalFrom(ctx context.Context) (*Principal, bool) {
	p, ok := ctx.Value(principalKey{}).(*Principal)
	return p, ok
}

// HashPassword hashes a password for a web_user row (bcrypt).
func HashPassword(password string) (string, error) {
	h, err := bcrypt.GenerateFromPassword([]byte(password), bcrypt.DefaultCost)
	if err != nil {
		return "", fmt.Errorf("hash password: %w", err)
	}
	return string(h), nil
}

// User is a person who may sign in to an agency's UI.
type User struct {
	Username string
	Name     string
	Role     string
	// Org is the organization of the node the user works for; empty for
	// the node's own people, who see every organization's referrals.
	Org string
	// Password is the clear password; empty makes a user who signs in
	// only through OIDC.
	Password string
}

// SeedUser creates or updates a user of the node a runs.
func SeedUser(ctx context.Context, a *app.App, u User) error {
	if !slices.Contains(Roles, u.Role) {
		return fmt.Errorf("seed user %s: role %q is not one of %v", u.Username, u.Role, Roles)
	}
	hash := ""
	if u.Password != "" {
		var err error
		if hash, err = HashPassword(u.Password); err != nil {
			return err
		}
	}
	return a.PutUser(ctx, app.User{Username: u.Username, Name: u.Name, Role: u.Role, Org: u.Org, PasswordHash: hash})
}

// Sign-in throttling slows down password guessing without letting one
// person lock others out. Failed passwords are counted per account from
// each client address: someone guessing one account's password behind a
// shared proxy slows down only that guessing, not the colleagues behind
// the same address. They are also counted per account from all addresses,
// more loosely, so that guessing spread over many addresses is slowed too
// (at the cost that someone can hold one named account back for a while).
// A successful sign-in costs nothing.
const (
	signInBurst  = 10 // failures per account and address before a wait
	accountBurst = 50 // failures per account from all addresses
	signInEvery  = 6 * time.Second
	maxThrottled = 10000
)

// throttle counts failed sign-ins.
type throttle struct {
	mu sync.Mutex
	by map[string]*rate.Limiter
}

// throttleKeys are the counters a sign-in as username from addr goes by,
// with throttleBursts their budgets.
var throttleBursts = [2]int{signInBurst, accountBurst}

func throttleKeys(addr, username string) [2]string {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		host = addr
	}
	account := strings.ToLower(username)
	return [2]string{"addr " + host + " " + account, "account " + account}
}

// limiter is key's counter, with a budget of burst (th.mu held).
func (th *throttle) limiter(key string, burst int) *rate.Limiter {
	if th.by == nil {
		th.by = map[string]*rate.Limiter{}
	}
	l, ok := th.by[key]
	if !ok {
		if len(th.by) >= maxThrottled {
			th.forgetIdle()
		}
		l = rate.NewLimiter(rate.Every(signInEvery), burst)
		th.by[key] = l
	}
	return l
}

// forgetIdle drops the counters that are full again (they hold nothing);
// if that is not enough, all of them rather than grow without end.
func (th *throttle) forgetIdle() {
	for k, l := range th.by {
		if l.Tokens() >= float64(l.Burst()) {
			delete(th.by, k)
		}
	}
	if len(th.by) >= maxThrottled {
		th.by = map[string]*rate.Limiter{}
	}
}

// allow reports whether username may try a password from addr now.
func (th *throttle) allow(addr, username string) bool {
	th.mu.Lock()
	defer th.mu.Unlock()
	for i, k := range throttleKeys(addr, username) {
		if th.limiter(k, throttleBursts[i]).Tokens() < 1 {
			return false
		}
	}
	return true
}

// failed counts a wrong password for username from addr.
func (th *throttle) failed(addr, username string) {
	th.mu.Lock()
	defer th.mu.Unlock()
	for i, k := range throttleKeys(addr, username) {
		th.limiter(k, throttleBursts[i]).Allow()
	}
}

// langCookie remembers the language chosen before signing in.
const langCookie = "refbus_lang"

func (u *UI) sessionCookie() string { return "refbus_" + u.agency + "_session" }

// errDisabled: a supervisor disabled the user.
var errDisabled = errors.New("the user is disabled")

// newSession signs username in: it stores the hash of a fresh token and
// sets the token as a cookie. Returns errDisabled for a disabled user.
func (u *UI) newSession(ctx context.Context, w http.ResponseWriter, username, role string) error {
	if off, err := u.app.UserDisabled(ctx, username); err != nil || off {
		return cmp.Or(err, errDisabled)
	}
	if err := u.app.SignedIn(ctx, username); err != nil {
		return err
	}
	var tok [32]byte
	_, _ = rand.Read(tok[:])
	hash := sha256.Sum256(tok[:])
	expires := time.Now().Add(u.cfg.SessionTTL)
	if err := u.app.StartSession(ctx, hash[:], username, role, expires); err != nil {
		return err
	}
	http.SetCookie(w, u.cookie(u.sessionCookie(), base64.RawURLEncoding.EncodeToString(tok[:]), expires))
	return nil
}

// cookie is a cookie that scripts cannot read, sent only over HTTPS (unless
// the service is configured for plain HTTP on a local network) and not on
// requests other sites start.
func (u *UI) cookie(name, value string, expires time.Time) *http.Cookie {
	c := &http.Cookie{Name: name, Value: value, Path: "/", HttpOnly: true, Secure: !u.cfg.InsecureCookies, SameSite: http.SameSiteLaxMode}
	if expires.IsZero() {
		c.MaxAge = -1
	} else {
		c.Expires = expires
	}
	return c
}

// sessionPrincipal returns the person whose live session the request
// carries, or nil.
func (u *UI) sessionPrincipal(r *http.Request) (*Principal, error) {
	c, err := r.Cookie(u.sessionCookie())
	if err != nil {
		return nil, nil
	}
	tok, err := base64.RawURLEncoding.DecodeString(c.Value)
	if err != nil {
		return nil, nil
	}
	hash := sha256.Sum256(tok)
	s, err := u.app.SessionByToken(r.Context(), hash[:])
	if errors.Is(err, app.ErrNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	return &Principal{Username: s.Username, Name: s.Name, Agency: u.agency, Org: s.Org, Role: s.Role, Lang: s.Lang, Session: hash[:]}, nil
}

// apiClaims are the claims of an agency system's bearer token.
type apiClaims struct {
	jwt.RegisteredClaims
	Agency string `json:"agency"`
	// Org, if set, is the organization of the agency's node the system
	// works for.
	Org  string `json:"org,omitempty"`
	Role string `json:"role"`
}

// DefaultTokenMaxTTL is the longest a bearer token may be valid for
// unless the node says otherwise: 90 days.
const DefaultTokenMaxTTL = 90 * 24 * time.Hour

// tokenIssuer and tokenAudience name refbus's own bearer tokens.
const (
	tokenIssuer   = "refbus"
	tokenAudience = "refbus-api"
)

// IssueToken makes a bearer token for an agency system of agency, signed
// with that agency's API key (HS256), valid for ttl: for the system of one
// organization org of the agency's node, or of the node as a whole ("").
func IssueToken(key []byte, agency, org, subject, role string, ttl time.Duration) (string, error) {
	now := time.Now()
	c := apiClaims{
		RegisteredClaims: jwt.RegisteredClaims{
			Issuer: tokenIssuer, Subject: subject, Audience: jwt.ClaimStrings{tokenAudience},
			IssuedAt: jwt.NewNumericDate(now), ExpiresAt: jwt.NewNumericDate(now.Add(ttl)), ID: uuid.NewString(),
		},
		Agency: agency, Org: org, Role: role,
	}
	return jwt.NewWithClaims(jwt.SigningMethodHS256, c).SignedString(key)
}

// TokenID is the id (jti) of a token IssueToken made, which its
// administrator revokes it by; the token is not checked.
func TokenID(token string) (string, error) {
	var c apiClaims
	if _, _, err := jwt.NewParser().ParseUnverified(token, &c); err != nil {
		return "", fmt.Errorf("read token: %w", err)
	}
	if c.ID == "" {
		return "", errors.New("the token has no id (jti): it cannot be revoked, only wait for its exp")
	}
	return c.ID, nil
}

// errOtherAgency: the caller proved who it is, for another agency.
var errOtherAgency = errors.New("signed in for another agency")

// errStore: the store did not answer whether the caller may come in.
var errStore = errors.New("store")

// bearerPrincipal checks the request's bearer token: nil without one, an
// error for a bad one, errOtherAgency for another agency's.
func (u *UI) bearerPrincipal(r *http.Request) (*Principal, error) {
	h := r.Header.Get("Authorization")
	if h == "" {
		return nil, nil
	}
	raw, ok := strings.CutPrefix(h, "Bearer ")
	if !ok || len(u.cfg.APIKey) == 0 {
		return nil, errors.New("bearer token required")
	}
	var c apiClaims
	_, err := jwt.ParseWithClaims(raw, &c, func(*jwt.Token) (any, error) { return u.cfg.APIKey, nil },
		jwt.WithValidMethods([]string{jwt.SigningMethodHS256.Alg()}), jwt.WithIssuer(tokenIssuer),
		jwt.WithAudience(tokenAudience), jwt.WithExpirationRequired(), jwt.WithIssuedAt(), jwt.WithLeeway(30*time.Second))
	if err != nil {
		return nil, fmt.Errorf("bearer token: %w", err)
	}
	if c.IssuedAt == nil {
		return nil, errors.New("bearer token: no iat (issued at): mint it with refbus-admin token mint")
	}
	if c.ID != "" && u.app.TokenRevoked(c.ID) {
		return nil, fmt.Errorf("bearer token %s: revoked by the network's administrator", c.ID)
	}
	if life := c.ExpiresAt.Sub(c.IssuedAt.Time); life > u.cfg.TokenMaxTTL {
		return nil, fmt.Errorf("bearer token: valid for %v, longer than this node takes (%v, REFBUS_TOKEN_MAX_TTL): mint one with a shorter --ttl", life, u.cfg.TokenMaxTTL)
	}
	if !slices.Contains(Roles, c.Role) {
		return nil, fmt.Errorf("bearer token: role %q is not one of %v", c.Role, Roles)
	}
	if c.Agency != u.agency {
		return nil, errOtherAgency
	}
	// A token whose subject is a user of this node speaks for that user:
	// disabling them stops it too. One lookup by primary key per request.
	if off, err := u.app.UserDisabled(r.Context(), c.Subject); err != nil {
		return nil, fmt.Errorf("%w: %w", errStore, err)
	} else if off {
		return nil, fmt.Errorf("bearer token: its subject %s is a disabled user of this node", c.Subject)
	}
	return &Principal{Username: c.Subject, Name: c.Subject, Agency: c.Agency, Org: c.Org, Role: c.Role}, nil
}

// publicPath reports whether anyone may fetch path: what the sign-in page
// needs, liveness, and the API's documentation.
func publicPath(path string) bool {
	switch path {
	case "/healthz", "/favicon.ico", "/ui/login", "/ui/lang", "/ui/oidc/login", "/ui/oidc/callback":
		return true
	}
	return strings.HasPrefix(path, "/ui/static/") || strings.HasPrefix(path, "/openapi") ||
		strings.HasPrefix(path, "/docs") || strings.HasPrefix(path, "/schemas")
}

// onlyFor are the paths (and those under them) only some roles may use,
// even to read: managing users is for supervisors; the dead letters and
// the access log are for supervisors and auditors.
var onlyFor = map[string][]string{
	"/ui/users":          {RoleSupervisor},
	"/ui/dead-letters":   {RoleSupervisor, RoleAuditor},
	"/ui/access-log":     {RoleSupervisor, RoleAuditor},
	"/api/v1/access-log": {RoleSupervisor, RoleAuditor},
}

// mayDo reports whether role may make a request with method to path.
// Auditors only read; re-driving dead letters, erasing a person and
// managing users are for supervisors (onlyFor).
func mayDo(role, method, path string) bool {
	for p, roles := range onlyFor {
		if (path == p || strings.HasPrefix(path, p+"/")) && !slices.Contains(roles, role) {
			return false
		}
	}
	if method == http.MethodGet || method == http.MethodHead || path == "/ui/logout" || path == "/ui/lang" || path == "/ui/search" {
		return true
	}
	switch role {
	case RoleAuditor:
		return false
	case RoleCaseworker:
		return path != "/api/v1/dead-letters/redrive" && path != "/api/v1/people/erase" && path != "/ui/erase"
	}
	return true
}

// guard lets a request through only if its principal may make it. The UI
// sends people to sign in; the API answers 401 problems. A principal of
// another agency gets 403 wherever it comes.
func (u *UI) guard(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p, err := u.bearerPrincipal(r)
		if errors.Is(err, errStore) {
			u.log.Error("check bearer token", "err", err)
			http.Error(w, "internal error", http.StatusInternalServerError)
			return
		}
		if errors.Is(err, errOtherAgency) {
			u.deny(w, r, http.StatusForbidden)
			return
		}
		if err != nil {
			// RFC 6750: the caller, who holds the token, learns what is
			// wrong with it.
			desc := strings.NewReplacer(`"`, `'`, `\`, ``).Replace(err.Error())
			w.Header().Set("WWW-Authenticate", `Bearer realm="refbus-`+u.agency+`", error="invalid_token", error_description="`+desc+`"`)
			u.deny(w, r, http.StatusUnauthorized)
			return
		}
		if p == nil {
			if p, err = u.sessionPrincipal(r); err != nil {
				u.log.Error("read session", "err", err)
				http.Error(w, "internal error", http.StatusInternalServerError)
				return
			}
		}
		if p != nil {
			// The application keeps a principal of one organization to it.
			r = r.WithContext(app.WithUser(app.WithOrg(context.WithValue(r.Context(), principalKey{}, p), p.Org), p.Username))
		}
		switch {
		case publicPath(r.URL.Path):
		case p == nil && strings.HasPrefix(r.URL.Path, "/api/"):
			w.Header().Set("WWW-Authenticate", `Bearer realm="refbus-`+u.agency+`"`)
			u.deny(w, r, http.StatusUnauthorized)
			return
		case p == nil:
			if r.Method == http.MethodGet && r.Header.Get("HX-Request") == "" {
				http.Redirect(w, r, "/ui/login", http.StatusSeeOther)
				return
			}
			u.deny(w, r, http.StatusUnauthorized)
			return
		case !mayDo(p.Role, r.Method, r.URL.Path):
			u.deny(w, r, http.StatusForbidden)
			return
		}
		next.ServeHTTP(w, r)
	})
}

// deny answers a refused request: an RFC 9457 problem on the API, a page
// in the UI.
func (u *UI) deny(w http.ResponseWriter, r *http.Request, status int) {
	if !strings.HasPrefix(r.URL.Path, "/ui/") {
		w.Header().Set("Content-Type", "application/problem+json")
		w.WriteHeader(status)
		fmt.Fprintf(w, `{"title":%q,"status":%d}`, http.StatusText(status), status)
		return
	}
	key := "error.forbidden"
	if status == http.StatusUnauthorized {
		key = "login.title"
	}
	u.errorPage(w, r, status, key)
}
