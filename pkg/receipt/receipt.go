// Package receipt is the bus's delivery receipt: the event a receiving node
// sends back for every event it applied or rejected, so that its sender
// knows the event was delivered, or refused and why.
package receipt

// Type is the CloudEvents type of a receipt.
const Type = "org.refbus.receipt.v1"
