package schemas_test

import (
	"testing"

	"github.com/refbus/refbus/pkg/event"
	"github.com/refbus/refbus/schemas"
)

func BenchmarkValidateRequested(b *testing.B) {
	reg, err := event.NewRegistry(schemas.FS)
	if err != nil {
		b.Fatal(err)
	}
	data := map[string]any{"to_agency": "education", "service": "school_transfer", "note": "Bench referral: family of four, two children under five; the mother asks for an assessment and for help with housing before winter. Caseworker available on weekdays.",
		"consent": map[string]any{"id": "0193a6c2-1111-7000-8000-000000000001", "purpose": "referral", "data_categories": []string{"summary"}, "expires_at": "2027-12-01T00:00:00Z"}}
	e, err := reg.New("urn:refbus:health", "org.refbus.referral.requested.v1", "0193a6c2-1111-7000-8000-000000000002", data)
	if err != nil {
		b.Fatal(err)
	}
	for b.Loop() {
		if err := reg.Validate(e); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkValidateReceipt(b *testing.B) {
	reg, _ := event.NewRegistry(schemas.FS)
	e, err := reg.New("urn:refbus:health", "org.refbus.receipt.v1", "0193a6c2-1111-7000-8000-000000000002", map[string]any{"event_id": "0193a6c2-1111-7000-8000-000000000002", "event_type": "org.refbus.referral.requested.v1", "outcome": "applied", "stream_seq": 12345})
	if err != nil {
		b.Fatal(err)
	}
	for b.Loop() {
		if err := reg.Validate(e); err != nil {
			b.Fatal(err)
		}
	}
}
