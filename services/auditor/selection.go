package main

import (
	"time"

	"github.com/spf13/cobra"

	"github.com/refbus/refbus/schemas"
	"github.com/refbus/refbus/services/auditor/internal/stream"
)

// selection is what replay and verify read: a range and filters.
type selection struct {
	fromSeq, toSeq uint64
	since, until   string
	filter         stream.Filter
}

func (s *selection) addFlags(cmd *cobra.Command) {
	f := cmd.Flags()
	f.Uint64Var(&s.fromSeq, "from-seq", 0, "first stream sequence to read")
	f.Uint64Var(&s.toSeq, "to-seq", 0, "last stream sequence to read")
	f.StringVar(&s.since, "since", "", "read messages stored at or after this RFC 3339 time")
	f.StringVar(&s.until, "until", "", "read messages stored at or before this RFC 3339 time")
	f.StringVar(&s.filter.Node, "agency", "", "only events this node sent or received (from the subject)")
	f.StringVar(&s.filter.Case, "case", "", "only events of this case (the caseid extension)")
	f.StringVar(&s.filter.Referral, "referral", "", "only events of this referral (the event's subject)")
	f.StringVar(&s.filter.Type, "type", "", "only events of this type, such as "+schemas.TypeRequested)
}

// resolve checks the flags and returns the range; errors are usage errors.
func (s *selection) resolve() (stream.Range, error) {
	r := stream.Range{FromSeq: s.fromSeq, ToSeq: s.toSeq}
	var err error
	if r.Since, err = parseTime("--since", s.since); err != nil {
		return r, err
	}
	if r.Until, err = parseTime("--until", s.until); err != nil {
		return r, err
	}
	if err := r.Check(); err != nil {
		return r, errUsage{err}
	}
	if err := s.filter.Check(); err != nil {
		return r, errUsage{err}
	}
	return r, nil
}

func parseTime(flag, v string) (time.Time, error) {
	if v == "" {
		return time.Time{}, nil
	}
	t, err := time.Parse(time.RFC3339, v)
	if err != nil {
		return time.Time{}, usageError("%s %q is not an RFC 3339 time such as 2026-11-22T09:00:00Z", flag, v)
	}
	return t, nil
}
