package web_test

import (
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"sync"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"

	"github.com/refbus/refbus/services/internal/core/web"
)

// issuer is a small OpenID provider the test runs: it signs in whoever the
// test says is at the keyboard, with the authorization code flow and PKCE.
type issuer struct {
	t   *testing.T
	srv *httptest.Server
	key *rsa.PrivateKey
	// signer signs ID tokens; a test may swap in a key the JWKS lacks.
	signer jose.Signer

	mu    sync.Mutex
	who   map[string]any // the claims of the next sign-in
	codes map[string]grant
}

type grant struct {
	claims    map[string]any
	nonce     string
	challenge string
	client    string
}

func newIssuer(t *testing.T) *issuer {
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	is := &issuer{t: t, key: key, codes: map[string]grant{}}
	is.signer = is.signerFor(key)
	mux := http.NewServeMux()
	mux.HandleFunc("GET /.well-known/openid-configuration", func(w http.ResponseWriter, r *http.Request) {
		u := is.srv.URL
		_ = json.NewEncoder(w).Encode(map[string]any{
			"issuer": u, "authorization_endpoint": u + "/authorize", "token_endpoint": u + "/token", "jwks_uri": u + "/jwks",
			"response_types_supported": []string{"code"}, "subject_types_supported": []string{"public"},
			"id_token_signing_alg_values_supported": []string{"RS256"}, "code_challenge_methods_supported": []string{"S256"},
		})
	})
	mux.HandleFunc("GET /jwks", func(w http.ResponseWriter, r *http.Request) {
		_ = json.NewEncoder(w).Encode(jose.JSONWebKeySet{Keys: []jose.JSONWebKey{{Key: &is.key.PublicKey, KeyID: "k1", Algorithm: "RS256", Use: "sig"}}})
	})
	mux.HandleFunc("GET /authorize", func(w http.ResponseWriter, r *http.Request) {
		q := r.URL.Query()
		if q.Get("code_challenge_method") != "S256" || q.Get("response_type") != "code" {
			http.Error(w, "want the code flow with PKCE S256", http.StatusBadRequest)
			return
		}
		is.mu.Lock()
		code := base64.RawURLEncoding.EncodeToString(sha256.New().Sum([]byte(time.Now().String() + q.Get("state"))))[:20]
		is.codes[code] = grant{claims: is.who, nonce: q.Get("nonce"), challenge: q.Get("code_challenge"), client: q.Get("client_id")}
		is.mu.Unlock()
		http.Redirect(w, r, q.Get("redirect_uri")+"?"+url.Values{"code": {code}, "state": {q.Get("state")}}.Encode(), http.StatusFound)
	})
	mux.HandleFunc("POST /token", func(w http.ResponseWriter, r *http.Request) {
		is.mu.Lock()
		g, ok := is.codes[r.PostFormValue("code")]
		delete(is.codes, r.PostFormValue("code"))
		is.mu.Unlock()
		sum := sha256.Sum256([]byte(r.PostFormValue("code_verifier")))
		id, secret, basic := r.BasicAuth()
		if basic { // RFC 6749 2.3.1: form-encoded, then Basic
			id, _ = url.QueryUnescape(id)
			secret, _ = url.QueryUnescape(secret)
		} else {
			id, secret = r.PostFormValue("client_id"), r.PostFormValue("client_secret")
		}
		if !ok || base64.RawURLEncoding.EncodeToString(sum[:]) != g.challenge || id != g.client || secret != "test client secret" {
			http.Error(w, `{"error":"invalid_grant"}`, http.StatusBadRequest)
			return
		}
		claims := map[string]any{"iss": is.srv.URL, "aud": g.client, "exp": time.Now().Add(5 * time.Minute).Unix(), "iat": time.Now().Unix(), "nonce": g.nonce}
		for k, v := range g.claims {
			claims[k] = v
		}
		raw, err := jwt.Signed(is.signer).Claims(claims).Serialize()
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(map[string]any{"access_token": "opaque", "token_type": "Bearer", "expires_in": 300, "id_token": raw})
	})
	is.srv = httptest.NewServer(mux)
	t.Cleanup(is.srv.Close)
	return is
}

func (is *issuer) signerFor(key *rsa.PrivateKey) jose.Signer {
	s, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.RS256, Key: key}, (&jose.SignerOptions{}).WithType("JWT").WithHeader("kid", "k1"))
	if err != nil {
		is.t.Fatal(err)
	}
	return s
}

// signIn walks the browser's side of the flow as who, following every
// redirect, and returns the last answer and the client.
func (is *issuer) signIn(n *network, a string, who map[string]any) (*http.Response, string, *client) {
	is.mu.Lock()
	is.who = who
	is.mu.Unlock()
	jar, _ := cookiejar.New(nil)
	c := &client{t: n.t, base: n.urls[a], http: &http.Client{Jar: jar}}
	res, body := c.get("/ui/oidc/login")
	// From here on, look at answers one by one.
	c.http.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	return res, body, c
}

// TestOIDCSignIn: people sign in through the agency's identity provider;
// someone the provider says works for another agency is refused (403), as
// is an ID token the provider's keys did not sign.
func TestOIDCSignIn(t *testing.T) {
	t.Parallel()
	is := newIssuer(t)
	n := newNetwork(t, func(a, base string, c *web.Config) {
		c.OIDC = &web.OIDCConfig{Issuer: is.srv.URL, ClientID: "refbus-" + a, ClientSecret: "test client secret", RedirectURL: base + "/ui/oidc/callback"}
	}, "social")

	res, body, c := is.signIn(n, "social", map[string]any{"sub": "u-17", "preferred_username": "aigerim", "name": "Aigerim Bekova", "refbus_agency": "social", "refbus_role": "caseworker"})
	wantStatus(t, res, http.StatusOK)
	if res.Request.URL.Path != "/ui/inbox" {
		t.Fatalf("after OIDC sign-in the browser is at %s", res.Request.URL)
	}
	wantContains(t, body, "Aigerim Bekova")
	res, _ = c.get("/ui/sent")
	wantStatus(t, res, http.StatusOK)

	res, _, c = is.signIn(n, "social", map[string]any{"sub": "u-18", "preferred_username": "nurlan", "name": "Nurlan", "refbus_agency": "ngo", "refbus_role": "caseworker"})
	wantStatus(t, res, http.StatusForbidden)
	res, _ = c.get("/ui/inbox")
	wantStatus(t, res, http.StatusSeeOther)

	other, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	is.signer = is.signerFor(other)
	res, _, c = is.signIn(n, "social", map[string]any{"sub": "u-17", "preferred_username": "aigerim", "refbus_agency": "social", "refbus_role": "caseworker"})
	wantStatus(t, res, http.StatusUnauthorized)
	res, _ = c.get("/ui/inbox")
	wantStatus(t, res, http.StatusSeeOther)
}
