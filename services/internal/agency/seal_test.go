package agency_test

import (
	"context"
	"strings"
	"testing"

	"github.com/google/uuid"
)

// A confidential field sealed to one agency about one referral opens only
// there: not at another agency, not for another referral, not altered.
func TestSealedFieldOpensOnlyForItsRecipient(t *testing.T) {
	t.Parallel()
	n := newNetwork(t, "ngo", "social", "education")
	ctx := context.Background()
	id := uuid.New()
	sealed, err := n.svc("ngo").svc.Seal(ctx, "social", id, shelterAddress)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(sealed, "Almaty") {
		t.Fatalf("sealed field shows the clear text: %s", sealed)
	}
	if got, err := n.svc("social").svc.Open(id, sealed); err != nil || got != shelterAddress {
		t.Fatalf("social opens %q, %v", got, err)
	}
	if _, err := n.svc("education").svc.Open(id, sealed); err == nil {
		t.Error("education opened a field sealed to social")
	}
	if _, err := n.svc("social").svc.Open(uuid.New(), sealed); err == nil {
		t.Error("social opened the field for another referral")
	}
	altered := []byte(sealed)
	altered[len(altered)/2] ^= 1
	if _, err := n.svc("social").svc.Open(id, string(altered)); err == nil {
		t.Error("an altered sealed field opened")
	}
	// The key outlives a restart: what was sealed before still opens.
	if err := n.svc("social").stop(); err != nil {
		t.Fatal(err)
	}
	n.start("social", nil)
	if got, err := n.svc("social").svc.Open(id, sealed); err != nil || got != shelterAddress {
		t.Fatalf("after a restart social opens %q, %v", got, err)
	}
}
