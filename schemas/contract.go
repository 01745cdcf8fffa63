package schemas

import (
	"fmt"
	"time"

	ce "github.com/cloudevents/sdk-go/v2/event"
	"github.com/google/uuid"

	"github.com/refbus/refbus/pkg/event"
	"github.com/refbus/refbus/pkg/receipt"
	"github.com/refbus/refbus/pkg/referral"
)

// The event types of the contract. Each has a schema in this directory
// (its "x-cloudevents-type") and its data type below; Types lists them.
const (
	TypeRequested        = "org.refbus.referral.requested.v1"
	TypeAccepted         = "org.refbus.referral.accepted.v1"
	TypeDeclined         = "org.refbus.referral.declined.v1"
	TypeStarted          = "org.refbus.referral.started.v1"
	TypeHeld             = "org.refbus.referral.held.v1"
	TypeResumed          = "org.refbus.referral.resumed.v1"
	TypeCompleted        = "org.refbus.referral.completed.v1"
	TypeFailed           = "org.refbus.referral.failed.v1"
	TypeCancelled        = "org.refbus.referral.cancelled.v1"
	TypeForwarded        = "org.refbus.referral.forwarded.v1"
	TypeOverdue          = "org.refbus.referral.overdue.v1"
	TypeConsentRevoked   = "org.refbus.consent.revoked.v1"
	TypePersonErased     = "org.refbus.person.erased.v1"
	TypeAddressDisclosed = "org.refbus.address.disclosed.v1"
	// TypeReceipt is the bus's own receipt (package receipt).
	TypeReceipt = receipt.Type
)

// Types maps every event type to a value of its data type, for whoever
// decodes events generically (and for the test that holds the Go types to
// the schemas).
var Types = map[string]any{
	TypeRequested:        Requested{},
	TypeAccepted:         Accepted{},
	TypeDeclined:         Declined{},
	TypeStarted:          Started{},
	TypeHeld:             Held{},
	TypeResumed:          Resumed{},
	TypeCompleted:        Completed{},
	TypeFailed:           Failed{},
	TypeCancelled:        Cancelled{},
	TypeForwarded:        Forwarded{},
	TypeOverdue:          Overdue{},
	TypeConsentRevoked:   ConsentRevoked{},
	TypePersonErased:     PersonErased{},
	TypeAddressDisclosed: AddressDisclosed{},
	TypeReceipt:          receipt.Data{},
}

// Requested is the data of TypeRequested: an organization, through its
// node, asks an organization of another node to provide a service to
// members of a case. The event's subject is the referral id, its caseid
// extension the case. FromOrg and ToOrg came later: a request without
// ToOrg is for the receiving node's first organization, one without
// FromOrg from the organization named after the sending node (a node
// with a registry refuses one without FromOrg).
type Requested struct {
	ToAgency  string     `json:"to_agency"`
	FromOrg   string     `json:"from_org,omitempty"`
	ToOrg     string     `json:"to_org,omitempty"`
	Service   string     `json:"service"`
	Note      string     `json:"note"`
	Urgency   string     `json:"urgency,omitempty"`
	AcceptBy  *time.Time `json:"accept_by,omitempty"`
	ParentID  *uuid.UUID `json:"parent_id,omitempty"`
	PersonKey string     `json:"person_key,omitempty"`
	Consent   *Consent   `json:"consent,omitempty"`
	Work      *Work      `json:"work,omitempty"`
}

// A referral's urgency, as the referrer sets it.
const (
	Routine = "routine"
	Urgent  = "urgent"
)

// Consent is the family's consent as it travels with a referral: its
// scope, not who gave it.
type Consent struct {
	ID             uuid.UUID `json:"id"`
	Purpose        string    `json:"purpose"`
	DataCategories []string  `json:"data_categories"`
	ExpiresAt      time.Time `json:"expires_at"`
}

// Accepted is the data of TypeAccepted.
type Accepted struct {
	Note string `json:"note,omitempty"`
	Work *Work  `json:"work,omitempty"`
}

// Declined is the data of TypeDeclined.
type Declined struct {
	ReasonCode string `json:"reason_code"`
	Reason     string `json:"reason"`
	Note       string `json:"note,omitempty"`
}

// Started is the data of TypeStarted.
type Started struct {
	Note string `json:"note,omitempty"`
}

// Held is the data of TypeHeld.
type Held struct {
	Reason string `json:"reason"`
	Note   string `json:"note,omitempty"`
}

// Resumed is the data of TypeResumed.
type Resumed struct {
	Note string `json:"note,omitempty"`
}

// Completed is the data of TypeCompleted.
type Completed struct {
	Outcome string `json:"outcome"`
	Note    string `json:"note,omitempty"`
	Work    *Work  `json:"work,omitempty"`
}

// Failed is the data of TypeFailed.
type Failed struct {
	Reason string `json:"reason"`
	Note   string `json:"note,omitempty"`
}

// Cancelled is the data of TypeCancelled.
type Cancelled struct {
	Reason string `json:"reason"`
	Note   string `json:"note,omitempty"`
}

// Forwarded is the data of TypeForwarded: the receiver passed the referral
// on; NewReferralID is the referral that carries the work on.
type Forwarded struct {
	NewReferralID uuid.UUID `json:"new_referral_id"`
	ToAgency      string    `json:"to_agency"`
	ToOrg         string    `json:"to_org,omitempty"`
	Service       string    `json:"service"`
	Reason        string    `json:"reason,omitempty"`
	Note          string    `json:"note,omitempty"`
}

// Overdue is the data of TypeOverdue: a deadline of the sender's passed.
type Overdue struct {
	Kind       string    `json:"kind"`
	DueAt      time.Time `json:"due_at"`
	FromAgency string    `json:"from_agency"`
	ToAgency   string    `json:"to_agency"`
	FromOrg    string    `json:"from_org,omitempty"`
	ToOrg      string    `json:"to_org,omitempty"`
	Service    string    `json:"service"`
}

// ConsentRevoked is the data of TypeConsentRevoked.
type ConsentRevoked struct {
	ConsentID uuid.UUID `json:"consent_id"`
	RevokedAt time.Time `json:"revoked_at"`
}

// PersonErased is the data of TypePersonErased.
type PersonErased struct {
	ErasedAt time.Time `json:"erased_at"`
}

// AddressDisclosed is the data of TypeAddressDisclosed.
type AddressDisclosed struct {
	FromOrg string    `json:"from_org"`
	ToOrg   string    `json:"to_org"`
	Until   time.Time `json:"until"`
	Purpose string    `json:"purpose"`
	Address string    `json:"address"`
}

// moveTypes are the event types that record each move; Receive has none
// (the bus makes it, and the receipt tells it).
var moveTypes = map[referral.Move]string{
	referral.Accept:   TypeAccepted,
	referral.Decline:  TypeDeclined,
	referral.Start:    TypeStarted,
	referral.Hold:     TypeHeld,
	referral.Resume:   TypeResumed,
	referral.Complete: TypeCompleted,
	referral.Fail:     TypeFailed,
	referral.Cancel:   TypeCancelled,
	referral.Forward:  TypeForwarded,
}

var moveOfType = func() map[string]referral.Move {
	m := make(map[string]referral.Move, len(moveTypes))
	for mv, t := range moveTypes {
		m[t] = mv
	}
	return m
}()

// MoveType is the event type that records move mv ("" for Receive).
func MoveType(mv referral.Move) string { return moveTypes[mv] }

// MoveOf is the move an event type records.
func MoveOf(eventType string) (referral.Move, bool) {
	mv, ok := moveOfType[eventType]
	return mv, ok
}

// MoveFields is everything a move may carry. Each move's event carries
// the part its type names: MoveData keeps that part, ReadMove reads it.
type MoveFields struct {
	ReasonCode    string     `json:"reason_code,omitempty"`
	Reason        string     `json:"reason,omitempty"`
	Outcome       string     `json:"outcome,omitempty"`
	Note          string     `json:"note,omitempty"`
	NewReferralID *uuid.UUID `json:"new_referral_id,omitempty"`
	ToAgency      string     `json:"to_agency,omitempty"`
	ToOrg         string     `json:"to_org,omitempty"`
	Service       string     `json:"service,omitempty"`
	Work          *Work      `json:"work,omitempty"`
}

// MoveData is the data of the event of move mv: the fields of f its type
// carries. Fields its type does not carry are dropped; missing required
// ones fail the event's validation when it is enqueued.
func MoveData(mv referral.Move, f MoveFields) (any, error) {
	switch mv {
	case referral.Accept:
		return Accepted{Note: f.Note, Work: f.Work}, nil
	case referral.Decline:
		return Declined{ReasonCode: f.ReasonCode, Reason: f.Reason, Note: f.Note}, nil
	case referral.Start:
		return Started{Note: f.Note}, nil
	case referral.Hold:
		return Held{Reason: f.Reason, Note: f.Note}, nil
	case referral.Resume:
		return Resumed{Note: f.Note}, nil
	case referral.Complete:
		return Completed{Outcome: f.Outcome, Note: f.Note, Work: f.Work}, nil
	case referral.Fail:
		return Failed{Reason: f.Reason, Note: f.Note}, nil
	case referral.Cancel:
		return Cancelled{Reason: f.Reason, Note: f.Note}, nil
	case referral.Forward:
		if f.NewReferralID == nil {
			return nil, fmt.Errorf("%w: a forward names its new referral", event.ErrInvalid)
		}
		return Forwarded{NewReferralID: *f.NewReferralID, ToAgency: f.ToAgency, ToOrg: f.ToOrg, Service: f.Service, Reason: f.Reason, Note: f.Note}, nil
	}
	return nil, fmt.Errorf("%w: move %q has no event", event.ErrInvalid, mv)
}

// ReadMove reads the data of a move event. The data must have passed its
// schema: MoveFields holds every type's fields, so any of them decodes.
func ReadMove(e *ce.Event) (MoveFields, error) {
	var f MoveFields
	err := event.Data(e, &f)
	return f, err
}
