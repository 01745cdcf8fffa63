package main

import (
	"errors"
	"fmt"

	"github.com/spf13/cobra"

	"github.com/refbus/refbus/services/auditor/internal/progress"
	"github.com/refbus/refbus/services/auditor/internal/render"
	"github.com/refbus/refbus/services/auditor/internal/stream"
)

const replayLong = `Replay prints the events of the REFERRALS stream in a range, oldest first.

The range is --from-seq or --since (RFC 3339, when the stream stored the
message) to --to-seq or --until; without them, the whole stream as it is when
the replay starts. Filters narrow it: --agency, a node as sender or receiver
(from the subject refbus.<from>.<to>.<event>), and --type are applied by the
server; --case and --referral by refbus-audit.

Formats:
  table  one line per event: stream sequence, the event's time (UTC), sender →
         receiver, type, referral (the event's subject) and case
  jsonl  JSON Lines: each event as the structured CloudEvent stored on the
         stream, byte for byte (a body with line breaks between its tokens
         is compacted onto its line; a binary-mode message is written as the
         structured event it decodes to)
  html   a self-contained timeline page per case: with --out DIR, one
         case-<id>.html per case in DIR; without it, the page of the --case
         given, on standard output

Exit status: 0, or 1 if some messages could not be shown (they are named on
standard error), or 2 on a usage or connection error.`

const replayExample = `  refbus-audit replay --since 2026-11-01T00:00:00Z --agency ngo
  refbus-audit replay --case 0193a2c4-5d6e-7f80-9a1b-2c3d4e5f6a7b --format html > case.html
  refbus-audit replay --format html --out audit/ --agency health
  refbus-audit replay --from-seq 1000 --to-seq 2000 --format jsonl > events.jsonl`

func (a *app) replayCommand() *cobra.Command {
	var sel selection
	var format, out string
	cmd := &cobra.Command{
		Use:     "replay",
		Short:   "Print the events of a range as a table, JSON Lines or HTML timelines",
		Long:    replayLong,
		Example: replayExample,
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			r, err := sel.resolve()
			if err != nil {
				return err
			}
			w, err := a.writer(format, out, sel.filter.Case)
			if err != nil {
				return err
			}
			return a.replay(cmd, r, sel.filter, w)
		},
	}
	sel.addFlags(cmd)
	cmd.Flags().StringVar(&format, "format", "table", "output format: table, jsonl or html")
	cmd.Flags().StringVar(&out, "out", "", "directory for the html pages (case-<id>.html)")
	return cmd
}

func (a *app) writer(format, out, onlyCase string) (render.Writer, error) {
	if out != "" && format != "html" {
		return nil, usageError("--out is for --format html")
	}
	switch format {
	case "table":
		return render.NewTable(a.stdout), nil
	case "jsonl":
		return render.NewJSONL(a.stdout), nil
	case "html":
		if out == "" && onlyCase == "" {
			return nil, usageError("--format html writes a page per case: give --out DIR, or --case ID for one page on standard output")
		}
		return render.NewHTML(out, a.stdout, onlyCase), nil
	}
	return nil, usageError("--format %q is not one of table, jsonl, html", format)
}

func (a *app) replay(cmd *cobra.Command, r stream.Range, f stream.Filter, w render.Writer) error {
	nc, js, err := a.connect()
	if err != nil {
		return err
	}
	defer nc.Close()
	meter := progress.Start(a.stderr, "replay")
	o := stream.Options{Range: r, Subjects: f.Subjects(), Stream: a.streamName()}
	if meter != nil {
		o.Progress = meter
	}
	skipped := 0
	err = stream.Read(cmd.Context(), js, o, func(m *stream.Msg) error {
		if !f.Match(m) {
			return nil
		}
		err := w.Write(m)
		if errors.Is(err, render.ErrSkipped) {
			skipped++
			fmt.Fprintf(a.stderr, "refbus-audit: %v\n", err)
			return nil
		}
		return err
	})
	meter.Stop()
	if cerr := w.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return err
	}
	if skipped > 0 {
		fmt.Fprintf(a.stderr, "refbus-audit: %d messages left out\n", skipped)
		return errProblems
	}
	return nil
}
