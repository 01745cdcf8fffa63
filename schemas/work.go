package schemas

import (
	"reflect"
	"slices"
	"strings"
)

// Work is a node's own work on a referral, as its events carry it to the
// other party (common.json#/$defs/work): health's screening, education's
// assessment and learning plan, social's benefit decision, a shelter's
// placement. Each kind of node records its own records in its own tables;
// every node can read all of them. The category tag is the data category
// a family's consent must cover to share the record.
type Work struct {
	Screening       *Screening       `json:"screening,omitempty" category:"health" doc:"A health check (health)."`
	Assessment      *Assessment      `json:"assessment,omitempty" category:"education" doc:"A PMPK assessment (education)."`
	LearningPlan    *LearningPlan    `json:"learning_plan,omitempty" category:"education" doc:"An individual learning plan, opened from an assessment (education)."`
	BenefitDecision *BenefitDecision `json:"benefit_decision,omitempty" category:"social" doc:"A decision on a benefit (social)."`
	Placement       *Placement       `json:"placement,omitempty" category:"shelter" doc:"A stay in a shelter, when a shelter accepts a referral (ngo)."`
}

// Screening is a health check of a child or a mother.
type Screening struct {
	Kind     string `json:"kind" minLength:"1" maxLength:"100" doc:"e.g. development_2y, patronage, pediatric"`
	Result   string `json:"result" enum:"normal,concern,urgent"`
	Findings string `json:"findings,omitempty" required:"false" maxLength:"4000"`
}

// Assessment is a PMPK assessment of a child.
type Assessment struct {
	Conclusion   string `json:"conclusion" minLength:"1" maxLength:"4000"`
	NeedsSupport bool   `json:"needs_support"`
}

// LearningPlan is an individual learning plan opened from an assessment.
type LearningPlan struct {
	Programme string `json:"programme" minLength:"1" maxLength:"200"`
	Goals     string `json:"goals" minLength:"1" maxLength:"4000"`
	StartsOn  string `json:"starts_on" format:"date"`
	ReviewOn  string `json:"review_on" format:"date" doc:"after starts_on"`
}

// BenefitDecision is a decision on a benefit.
type BenefitDecision struct {
	Benefit    string `json:"benefit" minLength:"1" maxLength:"200"`
	Decision   string `json:"decision" enum:"granted,refused"`
	MonthlyKZT int    `json:"monthly_kzt,omitempty" required:"false" minimum:"0" doc:"granted only"`
	Reason     string `json:"reason,omitempty" required:"false" maxLength:"4000"`
}

// Placement is a stay in a shelter: a bed, for at most six months. Its
// address is confidential: it does not leave the shelter's node. The
// referring organization learns that the family is placed, and until
// when, not where.
type Placement struct {
	Bed string `json:"bed" minLength:"1" maxLength:"40"`
	// Address is the address, as the shelter's node holds it and its API
	// takes and shows it. It is not part of the contract (local:"true"):
	// the schema has no such property, so an event that carries it is
	// refused.
	Address string `json:"address,omitempty" local:"true" required:"true" minLength:"1" maxLength:"400" doc:"Confidential: kept and shown only at the shelter's node; it is not sent to the referring organization."`
	// SealedAddress is what events before sealing carried: the address
	// sealed to the referring node. Nothing sends it any more.
	SealedAddress string `json:"sealed_address,omitempty" required:"false" doc:"No longer sent: events of earlier versions carried the address sealed to the referring node here."`
	StartsOn      string `json:"starts_on" required:"false" format:"date" doc:"Today, if left out."`
	EndsOn        string `json:"ends_on" format:"date" doc:"At most six months after starts_on."`
}

// The data categories that are not work records: a referral shares its
// summary (the note) always, and identity (the person key) when it names a
// person.
const (
	CategorySummary  = "summary"
	CategoryIdentity = "identity"
)

// WorkRecord is one kind of work record: its name in Work and the data
// category a consent must cover to share it.
type WorkRecord struct {
	Name     string
	Category string
}

// workRecords are Work's fields, read from its tags once.
var workRecords = func() []WorkRecord {
	t := reflect.TypeFor[Work]()
	out := make([]WorkRecord, t.NumField())
	for i := range out {
		f := t.Field(i)
		name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
		out[i] = WorkRecord{Name: name, Category: f.Tag.Get("category")}
	}
	return out
}()

// WorkRecords lists the kinds of work record, in Work's order.
func WorkRecords() []WorkRecord { return slices.Clone(workRecords) }

// Categories are the data categories a consent may cover, in a stable
// order: summary, identity, then the work records' (common.json's
// $defs/category).
func Categories() []string {
	out := []string{CategorySummary, CategoryIdentity}
	for _, r := range workRecords {
		if !slices.Contains(out, r.Category) {
			out = append(out, r.Category)
		}
	}
	return out
}

// Records names the records w holds, in Work's order.
func (w *Work) Records() []string {
	if w == nil {
		return nil
	}
	v := reflect.ValueOf(w).Elem()
	var out []string
	for i, r := range workRecords {
		if !v.Field(i).IsNil() {
			out = append(out, r.Name)
		}
	}
	return out
}

// Categories are the data categories of the records w holds.
func (w *Work) Categories() []string {
	var out []string
	for _, name := range w.Records() {
		for _, r := range workRecords {
			if r.Name == name && !slices.Contains(out, r.Category) {
				out = append(out, r.Category)
			}
		}
	}
	return out
}
