package render

import (
	"testing"

	"github.com/refbus/refbus/pkg/receipt"
	"github.com/refbus/refbus/schemas"
	"github.com/refbus/refbus/services/auditor/internal/stream"
)

// The timeline reads each event's data with the contract's type of its
// event type.
func TestDescribe(t *testing.T) {
	const parent = "0193a000-0000-7000-9000-000000000001"
	for _, tc := range []struct {
		typ, data  string
		kind, want string
	}{
		{schemas.TypeRequested, `{"to_agency":"social","service":"housing","note":"n","parent_id":"` + parent + `"}`,
			"requested", `education refers the case to social for "housing", forwarding referral ` + parent + `.`},
		{schemas.TypeForwarded, `{"new_referral_id":"` + parent + `","to_agency":"social","service":"housing","reason":"needs a home"}`,
			"move", "education forwarded the referral to social: needs a home."},
		{schemas.TypeDeclined, `{"reason_code":"no_capacity","reason":"full"}`,
			"move", "education declined the referral (no_capacity): full."},
		{receipt.Type, `{"event_id":"e1","event_type":"` + schemas.TypeRequested + `","outcome":"rejected","reason":"bad signature","stream_seq":3}`,
			"receipt", "education confirms delivery of the referral.requested.v1 event: rejected. Reason: bad signature"},
		{schemas.TypeOverdue, `{"kind":"accept","due_at":"2026-11-22T09:00:00+05:00","from_agency":"health","to_agency":"education","service":"x"}`,
			"move", `education notes that the accept deadline of the referral from health to education for "x" passed at 2026-11-22T04:00:00.000Z.`},
		{schemas.TypeConsentRevoked, `{}`, "other", "education sent " + schemas.TypeConsentRevoked + " to health."},
	} {
		a := stream.ScanBody([]byte(`{"type":"` + tc.typ + `","data":` + tc.data + `}`))
		kind, got := describe(&a, "education", "health", readData(a.Type(), a.Data))
		if kind != tc.kind || got != tc.want {
			t.Errorf("%s: %s %q\nwant %s %q", tc.typ, kind, got, tc.kind, tc.want)
		}
	}
}
