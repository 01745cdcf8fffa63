// Command bench measures the real referral pipeline (outbox -> relay ->
// JetStream -> inbox -> receipt -> sender's inbox) on a private Postgres with
// its real durability settings and an embedded NATS server, and measures raw
// JetStream async publishing on the same server in the same run, so the
// ratio between the two holds on a noisy machine.
//
// Its last line is the one `make bench` keeps:
//
//	bench: e2e_per_s=… p50_ms=… p99_ms=… raw_js_per_s=… ratio=…
package main

import (
	"cmp"
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"runtime"
	"strings"
	"syscall"
	"time"

	"github.com/refbus/refbus/services/internal/core"
)

func main() {
	// The services run in this process: their collector, as in production.
	core.TuneGC()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	res, err := run(ctx, log, os.Args[1:])
	if errors.Is(err, flag.ErrHelp) {
		return
	}
	if err != nil {
		if ctx.Err() != nil {
			fmt.Fprintln(os.Stderr, "bench: interrupted:", err)
		} else {
			fmt.Fprintln(os.Stderr, "bench: FAILED:", err)
		}
		os.Exit(1)
	}
	// Printed only after everything is stopped and removed, so this is the
	// last line whatever cleanup has to say.
	line := "bench:"
	if res.e2ePerSec > 0 {
		line += fmt.Sprintf(" e2e_per_s=%.0f p50_ms=%.1f p99_ms=%.1f raw_js_per_s=%.0f ratio=%.3f",
			res.e2ePerSec, ms(res.p50), ms(res.p99), res.rawPerSec, res.e2ePerSec/res.rawPerSec)
	}
	if res.cpu.host > 0 {
		line += fmt.Sprintf(" cpu_us_per_ref=%.0f", us(res.cpu.host))
	}
	if a := res.audit; a.events > 0 {
		line += fmt.Sprintf(" replay_per_s=%.0f verify_per_s=%.0f raw_read_per_s=%.0f replay_ratio=%.3f audit_events=%d replay_rss_kib=%d verify_rss_kib=%d",
			a.replayPerSec, a.verifyPerSec, a.readPerSec, a.replayPerSec/a.readPerSec, a.events, a.replayRSS, a.verifyRSS)
	}
	if res.inbox.referrals > 0 {
		line += " " + res.inbox.String()
	}
	if nr := res.net; nr.n > 0 {
		line += fmt.Sprintf(" net_nodes=%d net_orgs=%d net_e2e_per_s=%.0f net_ratio=%.3f onboard_ms=%.0f",
			nr.nodes, nr.orgs, nr.perSec(), nr.perSec()/res.e2ePerSec, ms(nr.onboard))
	}
	fmt.Println(line)
}

// config is the bench's flags.
type config struct {
	n          int
	concurrent int
	rate       int
	duration   time.Duration
	warmup     int
	rawN       int
	rawRounds  int
	timeout    time.Duration
	stall      time.Duration
	cpuProfile string
	latProfile string
	keep       bool
	pgSettings settingsFlag
	audit      int
	inboxN     int
	net        bool
	netN       int
	netNodes   int
	netOrgs    int
	netProfile string
	netC       int
}

// settingsFlag collects repeated -pgset name=value flags.
type settingsFlag map[string]string

func (f settingsFlag) String() string { return fmt.Sprint(map[string]string(f)) }

func (f settingsFlag) Set(v string) error {
	name, value, ok := strings.Cut(v, "=")
	if !ok || name == "" {
		return fmt.Errorf("want name=value, got %q", v)
	}
	f[name] = value
	return nil
}

func parseFlags(args []string) (config, error) {
	fs := flag.NewFlagSet("bench", flag.ContinueOnError)
	c := config{pgSettings: settingsFlag{}}
	fs.IntVar(&c.n, "n", 20000, "referrals in the throughput run (0: no pipeline, audit or network runs: the inbox run alone)")
	fs.IntVar(&c.concurrent, "c", 256, "concurrent creators in the throughput run (callers of CreateReferral at once, as many caseworkers and agency systems)")
	fs.IntVar(&c.rate, "rate", 1000, "offered load of the latency run, referrals per second")
	fs.DurationVar(&c.duration, "duration", 5*time.Second, "length of the latency run")
	fs.IntVar(&c.warmup, "warmup", 500, "referrals sent and received before measuring (0: none)")
	fs.IntVar(&c.rawN, "raw-n", 100000, "messages per round of the raw JetStream baseline")
	fs.IntVar(&c.rawRounds, "raw-rounds", 3, "rounds of the raw JetStream baseline; the median counts")
	fs.DurationVar(&c.timeout, "timeout", 5*time.Minute, "longest wait for any one phase")
	fs.DurationVar(&c.stall, "stall", time.Minute, "give up sooner when no referral is received for this long (0: wait until -timeout)")
	fs.StringVar(&c.cpuProfile, "cpuprofile", "", "write a CPU profile of the throughput run (this process: services, NATS, bench) to `file`")
	fs.StringVar(&c.latProfile, "latency-cpuprofile", "", "write a CPU profile of the latency run to `file`")
	fs.Var(c.pgSettings, "pgset", "extra Postgres `name=value` setting, for experiments (repeatable; the defaults are the real durability settings)")
	fs.IntVar(&c.inboxN, "inbox-referrals", 1_000_000, "referrals in an agency's store for the caseworkers' inbox figures (0: skip)")
	fs.IntVar(&c.audit, "audit-events", 1_000_000, "events in the stream for the auditors' replay and verify figures (0: skip)")
	fs.BoolVar(&c.net, "net", true, "run the network figures: -net-nodes nodes hosting -net-orgs organizations, the registry on, and onboarding one more node")
	fs.IntVar(&c.netN, "net-referrals", 3000, "referrals between random organizations in the network run")
	fs.IntVar(&c.netNodes, "net-nodes", 24, "nodes of the network run, each with its own database (the last one is the onboarded one)")
	fs.IntVar(&c.netOrgs, "net-orgs", 1000, "organizations of the network run, spread over its nodes")
	fs.IntVar(&c.netC, "net-c", 0, "concurrent creators in the network run (0: as -c)")
	fs.StringVar(&c.netProfile, "net-cpuprofile", "", "write a CPU profile of the network run's referrals to `file`")
	fs.BoolVar(&c.keep, "keep", false, "keep the temporary directory (Postgres data, NATS store, logs) for inspection")
	if err := fs.Parse(args); err != nil {
		return c, err
	}
	switch {
	case fs.NArg() > 0:
		return c, fmt.Errorf("unexpected arguments %q", fs.Args())
	case c.net && (c.netN < 1 || c.netNodes < 3 || c.netOrgs < c.netNodes):
		return c, errors.New("-net-referrals must be positive, -net-nodes at least 3 and -net-orgs at least -net-nodes")
	case c.n == 0 && c.inboxN < 1:
		return c, errors.New("-n 0 runs the inbox run alone: -inbox-referrals must be positive")
	case c.n < 0 || c.concurrent < 1 || c.rate < 1 || c.duration <= 0 || c.warmup < 0 || c.rawN < 1 || c.rawRounds < 1 || c.timeout <= 0 || c.stall < 0:
		return c, errors.New("-c, -rate, -duration, -raw-n, -raw-rounds and -timeout must be positive, -n, -warmup and -stall not negative")
	}
	return c, nil
}

// result is what the last line reports.
type result struct {
	e2ePerSec float64
	p50, p99  time.Duration
	rawPerSec float64
	cpu       cpuCost
	audit     auditResult
	inbox     inboxResult
	net       netRun
}

func run(ctx context.Context, log *slog.Logger, args []string) (res result, err error) {
	c, err := parseFlags(args)
	if err != nil {
		return res, err
	}
	if c.n == 0 {
		err := runInbox(ctx, log, c.inboxN, &res)
		return res, err
	}
	fmt.Printf("bench: %d cores, load average %s; starting Postgres (fsync on) and NATS in a temporary directory\n", runtime.NumCPU(), loadAverage())
	if len(c.pgSettings) > 0 {
		fmt.Printf("bench: Postgres settings changed for this run: %v\n", c.pgSettings)
	}
	families := max(c.n, c.warmup, int(float64(c.rate)*c.duration.Seconds()))/len(pairs) + 1
	st, err := startStack(ctx, log, c.keep, c.pgSettings, families)
	if err != nil {
		return res, err
	}
	defer func() {
		if cerr := st.close(context.WithoutCancel(ctx)); cerr != nil {
			err = errors.Join(err, fmt.Errorf("clean up: %w", cerr))
		}
	}()
	st.stall = c.stall
	// A service that stops on its own ends the bench with its error
	// instead of leaving the waits below to time out.
	ctx = st.ctx

	payload, err := referralPayload()
	if err != nil {
		return res, err
	}
	raw, err := rawBaseline(ctx, st.nats.ClientURL(), payload, c.rawN, c.rawRounds, c.timeout)
	if err != nil {
		return res, st.cause(err)
	}
	res.rawPerSec = raw.median
	fmt.Printf("raw JetStream:  %s msgs/s median of %d rounds of %d (%v), %d-byte events with Nats-Msg-Id, file storage, default sync\n",
		count(raw.median), c.rawRounds, c.rawN, roundsString(raw.rounds), len(payload.Data))

	if c.warmup > 0 {
		w, err := st.closedLoop(ctx, c.warmup, c.concurrent, c.timeout)
		if err != nil {
			return res, st.cause(fmt.Errorf("warm-up: %w", err))
		}
		fmt.Printf("warm-up:        %d referrals received end to end in %v\n", c.warmup, w.e2e.Round(time.Millisecond))
	}

	latMeter := startCPU()
	stopLatProfile, err := startCPUProfile(c.latProfile)
	if err != nil {
		return res, err
	}
	lat, err := st.openLoop(ctx, c.rate, c.duration, c.timeout)
	if perr := stopLatProfile(); perr != nil && err == nil {
		err = perr
	}
	if err != nil {
		return res, st.cause(fmt.Errorf("latency run: %w", err))
	}
	latCPU := latMeter.per(lat.n)
	res.p50, res.p99 = lat.bus.p50, lat.bus.p99
	fmt.Printf("latency run:    %d referrals offered at %d/s over %v, all received\n", lat.n, c.rate, c.duration)
	fmt.Printf("  bus latency (sender's outbox insert -> receiver's inbox insert): p50 %.1f ms  p90 %.1f ms  p99 %.1f ms  max %.1f ms\n",
		ms(lat.bus.p50), ms(lat.bus.p90), ms(lat.bus.p99), ms(lat.bus.max))
	fmt.Printf("  create call (scheduled time -> CreateReferral returned):          p50 %.1f ms  p90 %.1f ms  p99 %.1f ms  max %.1f ms\n",
		ms(lat.call.p50), ms(lat.call.p90), ms(lat.call.p99), ms(lat.call.max))
	fmt.Printf("  drain: the last receipt was back at its sender %v after the last create returned\n", lat.drain.Round(time.Millisecond))
	fmt.Printf("  CPU: %s\n", latCPU)

	stopProfile, err := startCPUProfile(c.cpuProfile)
	if err != nil {
		return res, err
	}
	meter := startCPU()
	thr, err := st.closedLoop(ctx, c.n, c.concurrent, c.timeout)
	res.cpu = meter.per(c.n)
	if perr := stopProfile(); perr != nil && err == nil {
		err = perr
	}
	if err != nil {
		return res, st.cause(fmt.Errorf("throughput run: %w", err))
	}
	res.e2ePerSec = float64(c.n) / thr.e2e.Seconds()
	fmt.Printf("throughput run: %d referrals by %d concurrent creators\n", c.n, c.concurrent)
	fmt.Printf("  created (referral row + outbox row committed): %s/s in %v\n",
		count(float64(c.n)/thr.create.Seconds()), thr.create.Round(time.Millisecond))
	fmt.Printf("  received end to end (receipt back, status received at the sender): %s/s in %v\n",
		count(res.e2ePerSec), thr.e2e.Round(time.Millisecond))
	fmt.Printf("  CPU: %s\n", res.cpu)
	if c.cpuProfile != "" {
		fmt.Printf("  CPU profile of the throughput run: %s (go tool pprof -top %s)\n", c.cpuProfile, c.cpuProfile)
	}

	if c.audit > 0 {
		// The agencies would answer the topped-up requests while the
		// auditors are timed: stop them first (close stops them again).
		st.stopSvcs()
		st.running.Wait()
		a, err := auditBench(ctx, st.nats.ClientURL(), c.audit, st.dir)
		if err != nil {
			return res, fmt.Errorf("audit run: %w", err)
		}
		res.audit = a
		fmt.Printf("audit run:      %d events in the stream (the pipeline's, topped up with requests and receipts)\n", a.events)
		fmt.Printf("  raw ordered-consumer read: %s events/s\n", count(a.readPerSec))
		fmt.Printf("  refbus-audit replay --format jsonl: %s events/s (%.0f%% of the raw read), peak RSS %d MiB\n",
			count(a.replayPerSec), 100*a.replayPerSec/a.readPerSec, a.replayRSS/1024)
		fmt.Printf("  refbus-audit verify: %s events/s, peak RSS %d MiB, exit %d (0: no problem found)\n",
			count(a.verifyPerSec), a.verifyRSS/1024, a.verifyExit)
		if a.trustEvents > 0 {
			fmt.Printf("  refbus-audit verify --trust, from the first of the %d signed events: %s events/s, peak RSS %d MiB, exit %d (problems: %s)\n",
				a.trustEvents, count(a.trustPerSec), a.trustRSS/1024, a.trustExit, cmp.Or(a.trustProblems, "none"))
		}
	}

	if c.inboxN > 0 {
		// On a stack of its own, after this one's agencies stopped.
		if err := runInbox(ctx, log, c.inboxN, &res); err != nil {
			return res, err
		}
	}

	if c.net {
		// After this stack's nodes stopped, on a Postgres and NATS of its own.
		st.stopSvcs()
		st.running.Wait()
		nr, err := benchNetwork(ctx, log, c.netNodes, c.netOrgs, c.netN, c.warmup, cmp.Or(c.netC, c.concurrent), c.timeout, c.stall, c.netProfile)
		if err != nil {
			return res, fmt.Errorf("network run: %w", err)
		}
		res.net = nr
		fmt.Printf("network run:    %d nodes (one database each), %d organizations, registry and signed listings on, NATS in operator mode (each node with its own credentials)\n", nr.nodes, nr.orgs)
		fmt.Printf("  warm-up: %d referrals (as many per node as the four-node run's warm-up)\n", nr.warmup)
		fmt.Printf("  %d referrals between random organizations of %d nodes by %d concurrent creators: created %s/s in %v, received end to end %s/s in %v (%.0f%% of the four-node run)\n",
			nr.n, nr.nodes-1, cmp.Or(c.netC, c.concurrent), count(float64(nr.n)/nr.create.Seconds()), nr.create.Round(time.Millisecond), count(nr.perSec()), nr.e2e.Round(time.Millisecond), 100*nr.perSec()/res.e2ePerSec)
		fmt.Printf("  CPU: %s\n", nr.cpu)
		fmt.Printf("  onboarding: node %d added (refbus-admin node add) and started, its first referral received (receipt back at the sender) after %v\n", nr.nodes, nr.onboard.Round(time.Millisecond))
		fmt.Printf("targets:        net_ratio >= 0.8: %s; onboard <= 5000 ms: %s\n", verdict(nr.perSec()/res.e2ePerSec >= 0.8), verdict(nr.onboard <= 5*time.Second))
	}

	fmt.Printf("ratio e2e/raw:  %.3f (load average now %s: other work on this host skews both figures, the ratio less)\n",
		res.e2ePerSec/res.rawPerSec, loadAverage())
	fmt.Printf("targets:        e2e >= 5000/s: %s; p99 <= 50 ms (at %d/s; the target is at 1000/s): %s\n",
		verdict(res.e2ePerSec >= 5000), c.rate, verdict(res.p99 <= 50*time.Millisecond))
	return res, nil
}

func verdict(ok bool) string {
	if ok {
		return "met"
	}
	return "MISSED"
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// count prints a rate without false precision.
func count(v float64) string { return fmt.Sprintf("%.0f", v) }

func roundsString(rs []float64) string {
	s := ""
	for i, r := range rs {
		if i > 0 {
			s += ", "
		}
		s += count(r)
	}
	return s
}

// loadAverage is the host's 1-minute load average, or "unknown"; it tells
// the reader of a slow run whether the bench had the machine to itself.
func loadAverage() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "unknown"
	}
	if f := strings.Fields(string(b)); len(f) > 0 {
		return f[0]
	}
	return "unknown"
}
