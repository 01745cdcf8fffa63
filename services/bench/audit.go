package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/refbus/refbus/pkg/bus"
	"github.com/refbus/refbus/pkg/event"
	"github.com/refbus/refbus/schemas"
)

// auditResult is what the auditors' part of the bench measured.
type auditResult struct {
	events                     int
	readPerSec                 float64 // raw ordered-consumer read, the yardstick
	replayPerSec, verifyPerSec float64
	replayRSS, verifyRSS       int64 // peak resident set, KiB
	verifyExit                 int
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
	if res.events, err = topUp(ctx, js, n); err != nil {
		return res, fmt.Errorf("fill the stream: %w", err)
	}

	start := time.Now()
	if err := readAll(ctx, js, res.events); err != nil {
		return res, fmt.Errorf("raw read: %w", err)
	}
	res.readPerSec = float64(res.events) / time.Since(start).Seconds()

	var secs float64
	if secs, res.replayRSS, _, err = timeCommand(ctx, bin, "--nats", natsURL, "replay", "--format", "jsonl"); err != nil {
		return res, fmt.Errorf("replay: %w", err)
	}
	res.replayPerSec = float64(res.events) / secs
	if secs, res.verifyRSS, res.verifyExit, err = timeCommand(ctx, bin, "--nats", natsURL, "verify"); err != nil {
		return res, fmt.Errorf("verify: %w", err)
	}
	res.verifyPerSec = float64(res.events) / secs
	return res, nil
}

// topUp publishes request/receipt pairs until the stream holds n events,
// and returns how many it holds.
func topUp(ctx context.Context, js jetstream.JetStream, n int) (int, error) {
	s, err := js.Stream(ctx, bus.Stream)
	if err != nil {
		return 0, err
	}
	info, err := s.Info(ctx)
	if err != nil {
		return 0, err
	}
	have := int(info.State.Msgs)
	reg, err := schemas.Registry()
	if err != nil {
		return 0, err
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
		return 0, err
	}
	req.SetID(evID)
	req.SetExtension(event.ExtCaseID, csID)
	req.SetExtension(event.ExtTraceparent, "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01")
	event.SetSequence(req, 1)
	rcp, err := reg.New(bus.Source("education"), bus.ReceiptType, refID, map[string]any{
		"event_id": evID, "event_type": req.Type(), "outcome": "applied", "stream_seq": 0,
	})
	if err != nil {
		return 0, err
	}
	rcp.SetID(rcID)
	rcp.SetExtension(event.ExtCaseID, csID)
	reqBody, err := event.Encode(req)
	if err != nil {
		return 0, err
	}
	rcpBody, err := event.Encode(rcp)
	if err != nil {
		return 0, err
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
	for k := 1; have < n; k++ {
		r, c := with(reqBody, k), with(rcpBody, k)
		if err := pub(bus.Subject("health", "education", req.Type()), "bench-req-"+fmt.Sprint(k), r); err != nil {
			return have, err
		}
		if err := pub(bus.Subject("education", "health", rcp.Type()), "bench-rcp-"+fmt.Sprint(k), c); err != nil {
			return have, err
		}
		have += 2
	}
	select {
	case <-js.PublishAsyncComplete():
	case <-ctx.Done():
		return have, ctx.Err()
	}
	info, err = s.Info(ctx)
	if err != nil {
		return have, err
	}
	return int(info.State.Msgs), nil
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
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Stdout = io.Discard
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	start := time.Now()
	err = cmd.Run()
	secs = time.Since(start).Seconds()
	if cmd.ProcessState != nil {
		if ru, ok := cmd.ProcessState.SysUsage().(*syscall.Rusage); ok {
			rssKiB = ru.Maxrss
		}
		code = cmd.ProcessState.ExitCode()
	}
	if err != nil && code != 1 {
		return secs, rssKiB, code, fmt.Errorf("%s %s: %w: %s", filepath.Base(name), strings.Join(args, " "), err, lastLines(stderr.String(), 5))
	}
	return secs, rssKiB, code, nil
}

func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	return strings.Join(lines[max(0, len(lines)-n):], "\n")
}
