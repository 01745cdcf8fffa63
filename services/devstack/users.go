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
// default: a caseworker of one organization, or ("-" for org) one of the
// node's own people, who see all of its organizations.
type demoUser struct {
	node, org, username, role, password string
}

// demoUsers makes, on the first run, a caseworker for each organization
// and a supervisor and an auditor for each node, with random passwords,
// kept in users.txt under the data directory (readable by its owner only)
// so later runs print the same; the stores keep only bcrypt hashes.
func demoUsers(dataDir string) ([]demoUser, error) {
	path := filepath.Join(dataDir, "users.txt")
	if f, err := os.Open(path); err == nil {
		defer f.Close()
		var out []demoUser
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			if p := strings.Fields(sc.Text()); len(p) == 5 {
				out = append(out, demoUser{p[0], p[1], p[2], p[3], p[4]})
			}
		}
		if len(out) > 0 {
			return out, sc.Err()
		}
	}
	var out []demoUser
	var b strings.Builder
	add := func(node, org, username, role string) {
		var pw [9]byte
		_, _ = rand.Read(pw[:])
		u := demoUser{node, org, username, role, base64.RawURLEncoding.EncodeToString(pw[:])}
		out = append(out, u)
		fmt.Fprintf(&b, "%s %s %s %s %s\n", u.node, u.org, u.username, u.role, u.password)
	}
	for _, n := range networks {
		for _, nd := range n.nodes {
			for _, o := range nd.orgs {
				add(nd.name, o.id, o.id+"-caseworker", web.RoleCaseworker)
			}
			add(nd.name, "-", nd.name+"-supervisor", web.RoleSupervisor)
			add(nd.name, "-", nd.name+"-auditor", web.RoleAuditor)
		}
	}
	if err := os.WriteFile(path, []byte(b.String()), 0o600); err != nil {
		return nil, fmt.Errorf("write demo users: %w", err)
	}
	return out, nil
}

// seedUsers writes the demo users into their nodes' stores.
func seedUsers(ctx context.Context, svcs map[string]*app.App, users []demoUser) error {
	for _, u := range users {
		svc, ok := svcs[u.node]
		if !ok {
			continue
		}
		org := strings.TrimPrefix(u.org, "-")
		name := strings.ToUpper(u.role[:1]) + u.role[1:] + " (" + u.node + ", demo)"
		if org != "" {
			name = strings.ToUpper(u.role[:1]) + u.role[1:] + " (" + org + ", demo)"
		}
		if err := web.SeedUser(ctx, svc, web.User{Username: u.username, Name: name, Role: u.role, Org: org, Password: u.password}); err != nil {
			return err
		}
	}
	return nil
}

// printUsers says, for each organization, where its inbox is and who signs
// in there, and gives each node's systems a bearer token for the API,
// valid for a day.
func printUsers(addrs map[string]*string, users []demoUser, apiKeys map[string][]byte) error {
	for _, n := range networks {
		fmt.Printf("Network %s (%s), the caseworkers' UI (user name / password):\n", n.name, n.settings.Country)
		for _, nd := range n.nodes {
			fmt.Printf("  node %s (%s)  http://%s/ui/inbox\n", nd.name, nd.kind, *addrs[nd.name])
			for _, o := range nd.orgs {
				fmt.Printf("    %s\n", o.name)
				for _, u := range users {
					if u.org == o.id {
						fmt.Printf("      %-34s %s\n", u.username, u.password)
					}
				}
			}
			for _, u := range users {
				if u.node == nd.name && u.org == "-" {
					fmt.Printf("    %-36s %s\n", u.username, u.password)
				}
			}
		}
	}
	fmt.Println("Bearer tokens for the nodes' own systems on the API (supervisor role, valid 24 h; OpenAPI at /docs):")
	for _, n := range networks {
		for _, nd := range n.nodes {
			tok, err := web.IssueToken(apiKeys[nd.name], nd.name, "", nd.name+"-demo-system", web.RoleSupervisor, 24*time.Hour)
			if err != nil {
				return err
			}
			fmt.Printf("  %-18s %s\n", nd.name, tok)
		}
	}
	return nil
}
