// Command refbus-admin is what a network's IT officer runs: it makes the
// NATS operator and a network per country, adds, suspends, resumes and
// removes nodes while the network runs, mints API tokens for a node's own
// systems, and lists the network. It keeps every secret in its directory
// (--dir, REFBUS_ADMIN_DIR): keep that directory off the servers.
//
//	refbus-admin init --operator NAME
//	refbus-admin network create NAME --country KZ [--replicas 3] [--coordinator NODE]
//	refbus-admin network list NAME
//	refbus-admin node add NETWORK NODE --kind KIND --org ID [--org ID ...]
//	refbus-admin node suspend|resume|remove NETWORK NODE
//	refbus-admin auditor add NETWORK NAME
//	refbus-admin token mint NETWORK NODE --subject SYSTEM [--role caseworker] [--ttl 720h]
//	refbus-admin token revoke NETWORK NODE TOKEN_ID
//
// Exit status: 0 on success, 1 on an error (the message says what to do).
package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/signal"
	"slices"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/refbus/refbus/pkg/bus"
	"github.com/refbus/refbus/services/internal/admin"
	"github.com/refbus/refbus/services/internal/core/web"
	"github.com/refbus/refbus/services/internal/network"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := command(os.Stdout).ExecuteContext(ctx)
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "refbus-admin:", err)
		os.Exit(1)
	}
}

// command is refbus-admin's command line, writing to out.
func command(out io.Writer) *cobra.Command {
	var dir, url string
	root := &cobra.Command{
		Use:           "refbus-admin",
		Short:         "Run a refbus network: its NATS identities, nodes, registry and tokens",
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.SetOut(out)
	root.PersistentFlags().StringVar(&dir, "dir", envOr("REFBUS_ADMIN_DIR", "refbus-admin"), "the administrator's directory, with every secret (REFBUS_ADMIN_DIR)")
	root.PersistentFlags().StringVar(&url, "url", envOr("NATS_URL", "nats://127.0.0.1:4222"), "the NATS servers (NATS_URL)")

	var operator string
	initCmd := &cobra.Command{
		Use:   "init",
		Short: "Make the operator, the root of the networks' NATS trust, and the servers' configuration",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			a, err := admin.Init(dir, operator)
			if err != nil {
				return err
			}
			fmt.Fprintf(out, "operator %s in %s\ninclude %s in each nats-server's configuration, then run: refbus-admin network create\n", a.Operator().Name, dir, a.ServerConfigPath())
			return nil
		},
	}
	initCmd.Flags().StringVar(&operator, "operator", "refbus", "the operator's name")

	root.AddCommand(initCmd, networkCommand(out, &dir, &url), nodeCommand(out, &dir, &url), auditorCommand(out, &dir), tokenCommand(out, &dir, &url))
	return root
}

func networkCommand(out io.Writer, dir, url *string) *cobra.Command {
	cmd := &cobra.Command{Use: "network", Short: "Make and list networks"}
	var s admin.Settings
	create := &cobra.Command{
		Use:   "create NAME",
		Short: "Make a network (its NATS account, stream, audit mirror and buckets) and bring it to the servers",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			a, err := admin.Open(*dir)
			if err != nil {
				return err
			}
			if s.Country = strings.ToUpper(s.Country); s.Country != "KZ" && s.Country != "KG" {
				return fmt.Errorf("--country %q: KZ or KG", s.Country)
			}
			n, err := a.CreateNetwork(args[0], s)
			if err != nil {
				return err
			}
			if err := n.Push(cmd.Context(), *url); err != nil {
				return fmt.Errorf("%w (is nats-server running with %s included?)", err, a.ServerConfigPath())
			}
			if err := n.Provision(cmd.Context(), *url); err != nil {
				return err
			}
			fmt.Fprintf(out, "network %s: stream %s (%d replicas), mirror %s, buckets %s, %s\ntrust anchor (REFBUS_ANCHOR): %s\n",
				n.Name, bus.Stream, max(s.Stream.Replicas, 1), bus.AuditStream, network.DirectoryBucket, network.RegistryBucket, n.Anchor())
			return nil
		},
	}
	create.Flags().StringVar(&s.Country, "country", "", "KZ or KG: the national id the network's nodes take")
	create.Flags().IntVar(&s.Stream.Replicas, "replicas", 1, "the stream's and buckets' replicas: 1 on one server, 3 on a cluster")
	create.Flags().StringVar(&s.Coordinator, "coordinator", "", "the node that sees every overdue referral")
	create.Flags().StringVar(&s.Language, "language", "ru", "the caseworkers' default language (ru, kk, ky, en)")
	create.Flags().StringVar(&s.TimeZone, "time-zone", "", "the network's time zone, such as Asia/Almaty")

	list := &cobra.Command{
		Use:   "list NAME",
		Short: "List the network's nodes as its registry holds them",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			n, err := openNetwork(*dir, args[0])
			if err != nil {
				return err
			}
			entries, err := n.List(cmd.Context(), *url)
			if err != nil {
				return err
			}
			w := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
			fmt.Fprintln(w, "NODE\tKIND\tSTATUS\tSINCE\tORGANIZATIONS")
			for _, e := range entries {
				fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\n", e.Node, e.Kind, e.Status, e.Since.Format(time.DateTime), strings.Join(e.Organizations, ", "))
			}
			return w.Flush()
		},
	}
	cmd.AddCommand(create, list)
	return cmd
}

func nodeCommand(out io.Writer, dir, url *string) *cobra.Command {
	cmd := &cobra.Command{Use: "node", Short: "Add, suspend, resume and remove nodes while the network runs"}
	var spec admin.NodeSpec
	add := &cobra.Command{
		Use:   "add NETWORK NODE",
		Short: "Add a node: its NATS identity, keys, consumer and registry entry, written as a bundle",
		Args:  cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			n, err := openNetwork(*dir, args[0])
			if err != nil {
				return err
			}
			if !slices.Contains([]string{"health", "education", "social", "ngo"}, spec.Kind) {
				return fmt.Errorf("--kind %q: health, education, social or ngo", spec.Kind)
			}
			spec.Name = args[1]
			b, err := n.AddNode(cmd.Context(), *url, spec)
			if err != nil {
				return err
			}
			fmt.Fprintf(out, "node %s in %s, hosting %s\nbundle: %s (node.env, node.creds and a file per key, each mode 0600): copy the directory to the node's machine as /etc/refbus/%s\nrun: cd %s && set -a && . ./node.env && refbus-%s\n",
				spec.Name, n.Name, strings.Join(spec.Organizations, ", "), b.Dir, spec.Name, b.Dir, spec.Kind)
			return nil
		},
	}
	add.Flags().StringVar(&spec.Kind, "kind", "", "health, education, social or ngo")
	add.Flags().StringSliceVar(&spec.Organizations, "org", nil, "an organization the node hosts (repeat, or comma-separated)")
	cmd.AddCommand(add)
	for _, c := range []struct {
		verb, short string
		status      network.Status
	}{
		{"suspend", "Suspend a node: the servers drop it and the others reject what it makes from now", network.Suspended},
		{"resume", "Resume a suspended node", network.Active},
		{"remove", "Remove a node for good, with its consumer", network.Removed},
	} {
		cmd.AddCommand(&cobra.Command{
			Use:   c.verb + " NETWORK NODE",
			Short: c.short,
			Args:  cobra.ExactArgs(2),
			RunE: func(cmd *cobra.Command, args []string) error {
				n, err := openNetwork(*dir, args[0])
				if err != nil {
					return err
				}
				if err := n.SetStatus(cmd.Context(), *url, args[1], c.status); err != nil {
					return err
				}
				fmt.Fprintf(out, "node %s of %s: %s\n", args[1], n.Name, c.status)
				return nil
			},
		})
	}
	return cmd
}

func auditorCommand(out io.Writer, dir *string) *cobra.Command {
	cmd := &cobra.Command{Use: "auditor", Short: "Read-only identities for auditors"}
	cmd.AddCommand(&cobra.Command{
		Use:   "add NETWORK NAME",
		Short: "Make an auditor's NATS credentials: read the stream and replay its mirror, nothing else",
		Args:  cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			n, err := openNetwork(*dir, args[0])
			if err != nil {
				return err
			}
			creds, inbox, err := n.AddAuditor(args[1])
			if err != nil {
				return err
			}
			fmt.Fprintf(out, "auditor %s of %s: %s\nrun: NATS_CREDS=%s NATS_INBOX=%s refbus-audit --mirror verify\n", args[1], n.Name, creds, creds, inbox)
			return nil
		},
	})
	return cmd
}

func tokenCommand(out io.Writer, dir, url *string) *cobra.Command {
	cmd := &cobra.Command{Use: "token", Short: "API tokens for a node's own systems"}
	var subject, role, org string
	var ttl time.Duration
	mint := &cobra.Command{
		Use:   "mint NETWORK NODE",
		Short: "Mint a bearer token for one of the node's systems (HS256 under the node's API key)",
		Long: `Mint a bearer token for one of the node's systems. Its claims:
  iss "refbus", aud "refbus-api", sub the system (--subject), iat and exp (--ttl),
  agency the node, role caseworker, supervisor or auditor (--role), and org, if
  --org names one, the organization of the node the system works for: it then
  sees and refers for that organization only.
The node checks it with its API key (REFBUS_API_KEY in its bundle).`,
		Args: cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			n, err := openNetwork(*dir, args[0])
			if err != nil {
				return err
			}
			if subject == "" {
				return fmt.Errorf("--subject: name the system the token is for, such as mis-polyclinic-5")
			}
			b, err := n.Bundle(args[1])
			if err != nil {
				return err
			}
			key, err := admin.APIKey(b)
			if err != nil {
				return err
			}
			tok, err := web.IssueToken(key, args[1], org, subject, role, ttl)
			if err != nil {
				return err
			}
			id, err := web.TokenID(tok)
			if err != nil {
				return err
			}
			fmt.Fprintln(out, tok)
			fmt.Fprintf(cmd.ErrOrStderr(), "token id %s (refbus-admin token revoke %s %s %s)\n", id, args[0], args[1], id)
			return nil
		},
	}
	mint.Flags().StringVar(&subject, "subject", "", "the system the token is for")
	mint.Flags().StringVar(&role, "role", web.RoleCaseworker, "caseworker, supervisor or auditor")
	mint.Flags().StringVar(&org, "org", "", "the organization of the node the system works for (none: the whole node)")
	mint.Flags().DurationVar(&ttl, "ttl", 30*24*time.Hour, "how long the token is good for")
	revoke := &cobra.Command{
		Use:   "revoke NETWORK NODE TOKEN_ID",
		Short: "Revoke a bearer token before it expires (its id, jti, as token mint printed it)",
		Args:  cobra.ExactArgs(3),
		RunE: func(cmd *cobra.Command, args []string) error {
			n, err := openNetwork(*dir, args[0])
			if err != nil {
				return err
			}
			if err := n.RevokeToken(cmd.Context(), *url, args[1], args[2]); err != nil {
				return err
			}
			fmt.Fprintf(out, "token %s of %s revoked: the node refuses it from now\n", args[2], args[1])
			return nil
		},
	}
	cmd.AddCommand(mint, revoke)
	return cmd
}

func openNetwork(dir, name string) (*admin.Network, error) {
	a, err := admin.Open(dir)
	if err != nil {
		return nil, err
	}
	return a.Network(name)
}

func envOr(key, def string) string {
	if v := os.Getenv(key); v != "" {
		return v
	}
	return def
}
