package main

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/base64"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/refbus/refbus/services/internal/core/app"
	"github.com/refbus/refbus/services/internal/core/web"
)

// demoUser is a person who may sign in to a node's UI on the embedded
// default.
type demoUser struct {
	agency, username, role, password string
}

// demoUsers makes, on the first run, a caseworker, a supervisor and an
// auditor for each node with random passwords, kept in users.txt under
// the data directory (readable by its owner only) so later runs print the
// same; the store keeps only their bcrypt hashes.
func demoUsers(dataDir string) ([]demoUser, error) {
	path := filepath.Join(dataDir, "users.txt")
	if f, err := os.Open(path); err == nil {
		defer f.Close()
		var out []demoUser
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			if p := strings.Fields(sc.Text()); len(p) == 4 {
				out = append(out, demoUser{p[0], p[1], p[2], p[3]})
			}
		}
		return out, sc.Err()
	}
	var out []demoUser
	var b strings.Builder
	for _, nd := range nodes {
		a := nd.name
		for _, role := range web.Roles {
			var pw [9]byte
			_, _ = rand.Read(pw[:])
			u := demoUser{a, a + "-" + role, role, base64.RawURLEncoding.EncodeToString(pw[:])}
			out = append(out, u)
			fmt.Fprintf(&b, "%s %s %s %s\n", u.agency, u.username, u.role, u.password)
		}
	}
	if err := os.WriteFile(path, []byte(b.String()), 0o600); err != nil {
		return nil, fmt.Errorf("write demo users: %w", err)
	}
	return out, nil
}

// seedUsers writes the demo users into their agencies' stores.
func seedUsers(ctx context.Context, svcs map[string]*app.App, users []demoUser) error {
	for _, u := range users {
		svc, ok := svcs[u.agency]
		if !ok {
			continue
		}
		name := strings.ToUpper(u.role[:1]) + u.role[1:] + " (" + u.agency + ", demo)"
		if err := web.SeedUser(ctx, svc, web.User{Username: u.username, Name: name, Role: u.role, Password: u.password}); err != nil {
			return err
		}
	}
	return nil
}

// printUsers says where to sign in, as whom, and gives each node's
// systems a bearer token for the API, valid for a day.
func printUsers(addrs map[string]*string, users []demoUser, apiKeys map[string][]byte) error {
	fmt.Println("The caseworkers' UI (user name / password):")
	for _, nd := range nodes {
		a := nd.name
		fmt.Printf("  %-10s http://%s/ui/inbox\n", a, *addrs[a])
		for _, u := range users {
			if u.agency == a {
				fmt.Printf("             %-22s %s\n", u.username, u.password)
			}
		}
	}
	fmt.Println("Bearer tokens for the nodes' own systems on the API (caseworker role, valid 24 h):")
	for _, nd := range nodes {
		a := nd.name
		tok, err := web.IssueToken(apiKeys[a], a, "", a+"-demo-system", web.RoleCaseworker, 24*time.Hour)
		if err != nil {
			return err
		}
		fmt.Printf("  %-10s %s\n", a, tok)
	}
	return nil
}
