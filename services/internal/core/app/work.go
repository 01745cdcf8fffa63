package app

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"

	"github.com/refbus/refbus/schemas"
	"github.com/refbus/refbus/services/internal/core/coredb"
	"github.com/refbus/refbus/services/internal/core/kind"
)

// checkWork says what is wrong with w as this node's own work: a node
// records only its kind's records, and its kind checks them. Returns
// ErrInvalid.
func (a *App) checkWork(w *schemas.Work) error {
	if w == nil {
		return nil
	}
	own := a.kind.Records()
	for _, name := range w.Records() {
		if !slices.Contains(own, name) {
			records := "no work records"
			if len(own) > 0 {
				records = strings.Join(own, ", ")
			}
			return fmt.Errorf("%w: work: a %s node does not record %s; it records %s", ErrInvalid, a.kind.Name(), name, records)
		}
	}
	return a.kind.CheckWork(w)
}

// recordWork keeps this node's work on referral r, which its caller
// checked (checkWork): in its kind's tables, in the caller's transaction,
// and on the referral as it is sent. The kind may complete w (a
// placement's first day).
func (a *App) recordWork(ctx context.Context, q *coredb.Queries, db kind.DB, r coredb.Referral, w *schemas.Work) error {
	if w == nil {
		return nil
	}
	if w.Placement != nil {
		w.Placement.SealedAddress = ""
	}
	if err := a.kind.RecordWork(ctx, db, kindReferral(r), w); err != nil {
		return err
	}
	b, err := json.Marshal(w)
	if err != nil {
		return err
	}
	return q.ReferralSetWork(ctx, coredb.ReferralSetWorkParams{ID: r.ID, Work: b})
}
