package core_test

import (
	"context"
	"strings"
	"testing"

	"github.com/google/uuid"

	"github.com/refbus/refbus/services/internal/core/nodetest"
)

// A confidential field sealed to one node about one referral opens only
// there: not at another node, not for another referral, not altered; and
// not to a node the directory does not list.
func TestSealedFieldOpensOnlyForItsRecipient(t *testing.T) {
	t.Parallel()
	const address = "Almaty, Zhetysu district, 14 Konaev street, flat 7"
	n := nodetest.New(t)
	n.Start("shelter", plain(legalHelp), nil)
	n.Start("social", plain(familySupport), nil)
	n.Start("school", plain(schoolTransfer), nil)
	ctx := context.Background()
	id := uuid.New()
	sealed, err := n.App("shelter").Seal(ctx, "social", id, address)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(sealed, "Almaty") {
		t.Fatalf("sealed field shows the clear text: %s", sealed)
	}
	if got, err := n.App("social").Open(id, sealed); err != nil || got != address {
		t.Fatalf("social opens %q, %v", got, err)
	}
	if _, err := n.App("school").Open(id, sealed); err == nil {
		t.Error("the school opened a field sealed to social")
	}
	if _, err := n.App("social").Open(uuid.New(), sealed); err == nil {
		t.Error("social opened the field for another referral")
	}
	altered := []byte(sealed)
	altered[len(altered)/2] ^= 1
	if _, err := n.App("social").Open(id, string(altered)); err == nil {
		t.Error("an altered sealed field opened")
	}
	if _, err := n.App("shelter").Seal(ctx, "police", id, address); err == nil || !strings.Contains(err.Error(), "not in the directory") {
		t.Errorf("sealed to a node the directory does not list: %v", err)
	}
	// The key outlives a restart: what was sealed before still opens.
	n.Restart("social", nil)
	if got, err := n.App("social").Open(id, sealed); err != nil || got != address {
		t.Fatalf("after a restart social opens %q, %v", got, err)
	}
}
