package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/nats-io/nkeys"

	"github.com/refbus/refbus/pkg/bus"
	"github.com/refbus/refbus/pkg/event"
	"github.com/refbus/refbus/pkg/receipt"
	"github.com/refbus/refbus/schemas"
)

// auditResult is what the auditors' part of the bench measured.
type auditResult struct {
	events                     int
	readPerSec                 float64 // raw ordered-consumer read, the yardstick
	replayPerSec, verifyPerSec float64
	replayRSS, verifyRSS       int64 // peak resident set, KiB
	verifyExit                 int
	// verify --trust of the topped-up events, which are signed and
	// chained as the agencies sign them.
	trustEvents int
	trustPerSec float64
	trustRSS    int64
	trustExit   int
	// trustProblems is verify's count of problems by kind, if any.
	trustProblems string
}

// auditBench tops the REFERRALS stream up to n events with referral
// requests and their receipts shaped like the pipeline's, then times a raw
// ordered-consumer read of the whole stream in this process, and the real
// `refbus-audit replay --format jsonl` and `refbus-audit verify` as their
// own processes.
func auditBench(ctx context.Context, natsURL string, n int, dir string) (res auditResult, err error) {
	bin := filepath.Join(dir, "refbus-audit")
	build := exec.CommandContext(ctx, "go", "build", "-o", bin, "github.com/refbus/refbus/services/auditor")
	build.Stderr = os.Stderr
	if err := build.Run(); err != nil {
		return res, fmt.Errorf("build refbus-audit: %w", err)
	}
	nc, err := nats.Connect(natsURL)
	if err != nil {
		return res, err
	}
	defer nc.Close()
	js, err := jetstream.New(nc, jetstream.WithPublishAsyncMaxPending(4096))
	if err != nil {
		return res, err
	}
	trustFile := filepath.Join(dir, "trust")
	var firstSigned uint64
	if res.events, firstSigned, err = topUp(ctx, js, n, trustFile); err != nil {
		return res, fmt.Errorf("fill the stream: %w", err)
	}

	start := time.Now()
	if err := readAll(ctx, js, res.events); err != nil {
		return res, fmt.Errorf("raw read: %w", err)
	}
	res.readPerSec = float64(res.events) / time.Since(start).Seconds()

	var secs float64
	if secs, res.replayRSS, _, err = timeReplay(ctx, bin, "--nats", natsURL, "replay", "--format", "jsonl"); err != nil {
		return res, fmt.Errorf("replay: %w", err)
	}
	res.replayPerSec = float64(res.events) / secs
	verifyArgs := []string{"--nats", natsURL, "verify"}
	if p := os.Getenv("REFBUS_AUDIT_CPUPROFILE"); p != "" {
		// Profile verify rather than guess (go tool pprof -top FILE).
		verifyArgs = append(verifyArgs, "--cpuprofile", p)
	}
	if secs, res.verifyRSS, res.verifyExit, err = timeCommand(ctx, bin, verifyArgs...); err != nil {
		return res, fmt.Errorf("verify: %w", err)
	}
	res.verifyPerSec = float64(res.events) / secs
	if firstSigned > 0 {
		res.trustEvents = res.events - int(firstSigned) + 1
		// The pipeline's agencies, which do not sign, answer the
		// topped-up requests to education with receipts that land among
		// them: verify counts those as unsigned.
		if secs, res.trustRSS, res.trustExit, res.trustProblems, err = timeCommandProblems(ctx, true, bin, "--nats", natsURL, "verify", "--trust", trustFile, "--from-seq", fmt.Sprint(firstSigned)); err != nil {
			return res, fmt.Errorf("verify --trust: %w", err)
		}
		res.trustPerSec = float64(res.trustEvents) / secs
	}
	return res, nil
}

// topUp publishes request/receipt pairs, signed and chained by health and
// education with keys made here (their anchors written to trustFile), until
// the stream holds n events. It returns how many it holds and the stream
// sequence of the first it published (0 if none).
func topUp(ctx context.Context, js jetstream.JetStream, n int, trustFile string) (int, uint64, error) {
	s, err := js.Stream(ctx, bus.Stream)
	if err != nil {
		return 0, 0, err
	}
	info, err := s.Info(ctx)
	if err != nil {
		return 0, 0, err
	}
	have := int(info.State.Msgs)
	first := info.State.LastSeq + 1
	if have >= n {
		first = 0
	}
	reg, err := schemas.Registry()
	if err != nil {
		return 0, 0, err
	}
	trust := event.Trust{}
	signers := map[string]*event.Signer{}
	for _, a := range []string{"health", "education"} {
		kp, err := nkeys.CreateAccount()
		if err != nil {
			return 0, 0, err
		}
		seed, err := kp.Seed()
		if err != nil {
			return 0, 0, err
		}
		if signers[a], err = event.NewSigner(seed); err != nil {
			return 0, 0, err
		}
		trust[a] = signers[a].PublicKey()
	}
	if err := os.WriteFile(trustFile, []byte(strings.ReplaceAll(trust.String(), ",", "\n")+"\n"), 0o644); err != nil {
		return 0, 0, err
	}
	const (
		evID  = "0193a000-0000-7000-8000-000000000000"
		rcID  = "0193a000-0000-7000-8000-999999999999"
		refID = "0193a000-0000-7000-9000-000000000000"
		csID  = "0193a000-0000-7000-a000-000000000000"
	)
	req, err := reg.New(bus.Source("health"), "org.refbus.referral.requested.v1", refID, map[string]any{
		"to_agency": "education", "service": "early_intervention_assessment",
		"note": "Bench referral: speech delay seen at the 2-year check; the family agrees to an assessment and asks for help with housing.",
	})
	if err != nil {
		return 0, 0, err
	}
	req.SetID(evID)
	req.SetExtension(event.ExtCaseID, csID)
	req.SetExtension(event.ExtTraceparent, "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01")
	event.SetSequence(req, 1)
	// Sealed as a node seals it, with a wrapped key of the real size
	// (key id, HPKE enc and ciphertext): the auditor reads the sealed form.
	wrapped := make([]byte, 1+12+32+48)
	_, _ = rand.Read(wrapped)
	if err := reg.Seal(req, event.NewDataKey(), wrapped); err != nil {
		return 0, 0, err
	}
	rcp, err := reg.New(bus.Source("education"), receipt.Type, refID, map[string]any{
		"event_id": evID, "event_type": req.Type(), "outcome": "applied", "stream_seq": 0,
	})
	if err != nil {
		return 0, 0, err
	}
	rcp.SetID(rcID)
	rcp.SetExtension(event.ExtCaseID, csID)
	reqBody, err := event.Encode(req)
	if err != nil {
		return 0, 0, err
	}
	rcpBody, err := event.Encode(rcp)
	if err != nil {
		return 0, 0, err
	}
	with := func(body []byte, k int) []byte {
		id := func(s string) []byte { return []byte(s[:24] + fmt.Sprintf("%012d", k)) }
		body = bytes.ReplaceAll(body, []byte(evID), id(evID))
		body = bytes.ReplaceAll(body, []byte(rcID), id("0193a000-0000-7000-b000-"))
		body = bytes.ReplaceAll(body, []byte(refID), id(refID))
		return bytes.ReplaceAll(body, []byte(csID), id(csID))
	}
	pub := func(subject, msgID string, body []byte) error {
		h := nats.Header{}
		h.Set(nats.MsgIdHdr, msgID)
		h.Set("Content-Type", event.ContentType)
		_, err := js.PublishMsgAsync(&nats.Msg{Subject: subject, Header: h, Data: body}, jetstream.WithStallWait(time.Minute))
		return err
	}
	// Each agency signs its own chain on its own goroutine, in order.
	pairs := (max(n-have, 0) + 1) / 2
	sctx, cancel := context.WithCancel(ctx)
	defer cancel()
	sign := func(a string, template []byte) (<-chan []byte, <-chan error) {
		out, errc := make(chan []byte, 1024), make(chan error, 1)
		go func() {
			defer close(out)
			for k := 1; k <= pairs; k++ {
				e, err := event.Decode(nil, with(template, k))
				if err == nil {
					_, err = signers[a].Sign(e)
				}
				var b []byte
				if err == nil {
					b, err = event.Encode(e)
				}
				if err != nil {
					errc <- err
					return
				}
				select {
				case out <- b:
				case <-sctx.Done():
					return
				}
			}
		}()
		return out, errc
	}
	reqs, reqErr := sign("health", reqBody)
	rcps, rcpErr := sign("education", rcpBody)
	for k := 1; k <= pairs; k++ {
		r, ok1 := <-reqs
		c, ok2 := <-rcps
		if !ok1 || !ok2 {
			select {
			case err := <-reqErr:
				return have, 0, fmt.Errorf("sign: %w", err)
			case err := <-rcpErr:
				return have, 0, fmt.Errorf("sign: %w", err)
			default:
				return have, 0, ctx.Err()
			}
		}
		if err := pub(bus.Subject("health", "education", req.Type()), "bench-req-"+fmt.Sprint(k), r); err != nil {
			return have, 0, err
		}
		if err := pub(bus.Subject("education", "health", rcp.Type()), "bench-rcp-"+fmt.Sprint(k), c); err != nil {
			return have, 0, err
		}
		have += 2
	}
	select {
	case <-js.PublishAsyncComplete():
	case <-ctx.Done():
		return have, 0, ctx.Err()
	}
	info, err = s.Info(ctx)
	if err != nil {
		return have, 0, err
	}
	return int(info.State.Msgs), first, nil
}

// readAll reads n messages through an ordered consumer, doing nothing with
// them: the ceiling any replay can reach.
func readAll(ctx context.Context, js jetstream.JetStream, n int) error {
	cons, err := js.OrderedConsumer(ctx, bus.Stream, jetstream.OrderedConsumerConfig{})
	if err != nil {
		return err
	}
	it, err := cons.Messages(jetstream.PullMaxMessages(4096))
	if err != nil {
		return err
	}
	defer it.Stop()
	for range n {
		if _, err := it.Next(); err != nil {
			return err
		}
	}
	return nil
}

// timeCommand runs a command to completion with its output discarded, and
// returns its wall time, peak RSS and exit code. Exit code 1 (problems
// found) is not an error here: the caller reports it.
func timeCommand(ctx context.Context, name string, args ...string) (secs float64, rssKiB int64, code int, err error) {
	secs, rssKiB, code, _, err = timeCommandProblems(ctx, false, name, args...)
	return secs, rssKiB, code, err
}

// timeReplay is timeCommand with the output going to /dev/null, as in
// "refbus-audit replay > /dev/null": replay's gigabyte of JSON Lines would
// otherwise cross a pipe into this process, which also runs the NATS
// server, and be timed as replay's.
func timeReplay(ctx context.Context, name string, args ...string) (secs float64, rssKiB int64, code int, err error) {
	null, err := os.OpenFile(os.DevNull, os.O_WRONLY, 0)
	if err != nil {
		return 0, 0, 0, err
	}
	defer null.Close()
	secs, rssKiB, code, _, err = runTimed(ctx, null, false, name, args...)
	return secs, rssKiB, code, err
}

// timeCommandProblems is timeCommand that also returns verify's count of
// problems by kind; quiet does not print the first problems.
func timeCommandProblems(ctx context.Context, quiet bool, name string, args ...string) (secs float64, rssKiB int64, code int, problems string, err error) {
	return runTimed(ctx, nil, quiet, name, args...)
}

// runTimed runs and times a command; its output goes to out, or, if out is
// nil, is kept for the problems it reports.
func runTimed(ctx context.Context, out *os.File, quiet bool, name string, args ...string) (secs float64, rssKiB int64, code int, problems string, err error) {
	cmd := exec.CommandContext(ctx, name, args...)
	head := &headWriter{max: 2048}
	cmd.Stdout = head
	if out != nil {
		cmd.Stdout = out
	}
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	start := time.Now()
	if err = cmd.Start(); err == nil {
		done := make(chan struct{})
		peak := make(chan int64, 1)
		go func() { peak <- watchPeakRSS(cmd.Process.Pid, done) }()
		err = cmd.Wait()
		close(done)
		rssKiB = <-peak
	}
	secs = time.Since(start).Seconds()
	if cmd.ProcessState != nil {
		if ru, ok := cmd.ProcessState.SysUsage().(*syscall.Rusage); ok && rssKiB == 0 {
			rssKiB = ru.Maxrss
		}
		code = cmd.ProcessState.ExitCode()
	}
	problems = head.problems()
	if code == 1 && !quiet {
		fmt.Fprintf(os.Stderr, "bench: %s %s found problems; its output begins:\n%s\n", filepath.Base(name), strings.Join(args, " "), head.buf.String())
	}
	if err != nil && code != 1 {
		return secs, rssKiB, code, problems, fmt.Errorf("%s %s: %w: %s", filepath.Base(name), strings.Join(args, " "), err, lastLines(stderr.String(), 5))
	}
	return secs, rssKiB, code, problems, nil
}

// headWriter keeps the first max bytes written to it and drops the rest.
type headWriter struct {
	buf  bytes.Buffer
	tail []byte
	max  int
}

func (w *headWriter) Write(p []byte) (int, error) {
	if room := w.max - w.buf.Len(); room > 0 {
		w.buf.Write(p[:min(len(p), room)])
	}
	w.tail = append(w.tail, p...)
	if len(w.tail) > w.max {
		w.tail = append(w.tail[:0], w.tail[len(w.tail)-w.max:]...)
	}
	return len(p), nil
}

// problems is the summary line of refbus-audit verify that counts the
// problems by kind, if it printed one.
func (w *headWriter) problems() string {
	for _, l := range strings.Split(string(w.tail), "\n") {
		if s, ok := strings.CutPrefix(strings.TrimSpace(l), "problems: "); ok {
			return s
		}
	}
	return ""
}

// watchPeakRSS returns the peak resident set (VmHWM, KiB) of process pid,
// read every 20ms until done is closed. The rusage of a child is no use
// here: Go starts it with vfork, and the kernel counts the parent's
// resident set (this process, holding a NATS server with a million
// messages) as the child's peak until it calls exec.
func watchPeakRSS(pid int, done <-chan struct{}) int64 {
	path := fmt.Sprintf("/proc/%d/status", pid)
	var peak int64
	t := time.NewTicker(20 * time.Millisecond)
	defer t.Stop()
	for {
		if b, err := os.ReadFile(path); err == nil {
			for _, line := range strings.Split(string(b), "\n") {
				if v, ok := strings.CutPrefix(line, "VmHWM:"); ok {
					var kib int64
					if _, err := fmt.Sscan(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), &kib); err == nil {
						peak = max(peak, kib)
					}
				}
			}
		}
		select {
		case <-done:
			return peak
		case <-t.C:
		}
	}
}

func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	return strings.Join(lines[max(0, len(lines)-n):], "\n")
}
