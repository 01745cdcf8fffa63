// Package receipt is the bus's delivery receipt: the event a receiving node
// sends back for every event it applied or rejected, so that its sender
// knows the event was delivered, or refused and why.
package receipt

// Type is the CloudEvents type of a receipt.
const Type = "org.refbus.receipt.v1"

// Data is the data of a receipt event (receipt.v1.json).
type Data struct {
	EventID   string `json:"event_id"`
	EventType string `json:"event_type"`
	Outcome   string `json:"outcome"`
	Reason    string `json:"reason,omitempty"`
	StreamSeq uint64 `json:"stream_seq"`
}
