package agency

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"time"

	"github.com/danielgtaylor/huma/v2"
	"github.com/danielgtaylor/huma/v2/adapters/humago"
	"github.com/google/uuid"

	"github.com/refbus/refbus/pkg/inbox"
	"github.com/refbus/refbus/pkg/referral"
)

// newAPI builds the HTTP API. huma validates requests against the
// operations' schemas, answers RFC 9457 problems, and serves the OpenAPI
// document at /openapi.json.
func (s *Service) newAPI() http.Handler {
	mux := http.NewServeMux()
	cfg := huma.DefaultConfig("refbus "+s.self, "1.0.0")
	cfg.Info.Description = "The referral API of the " + s.self + " agency."
	api := humago.New(mux, cfg)
	s.humaAPI = api

	huma.Register(api, huma.Operation{
		OperationID:   "create-referral",
		Method:        http.MethodPost,
		Path:          "/api/v1/referrals",
		Summary:       "Refer a case to another agency",
		DefaultStatus: http.StatusCreated,
		MaxBodyBytes:  1 << 20,
	}, s.postReferral)
	huma.Register(api, huma.Operation{
		OperationID: "get-referral",
		Method:      http.MethodGet,
		Path:        "/api/v1/referrals/{id}",
		Summary:     "A referral this agency sent or received",
	}, s.getReferral)
	huma.Register(api, huma.Operation{
		OperationID: "list-sent",
		Method:      http.MethodGet,
		Path:        "/api/v1/referrals",
		Summary:     "Referrals this agency sent, newest first, with their live status",
	}, s.listSent)
	huma.Register(api, huma.Operation{
		OperationID: "list-inbox",
		Method:      http.MethodGet,
		Path:        "/api/v1/inbox",
		Summary:     "Referrals this agency received, newest first",
	}, s.listInbox)
	for _, mv := range referral.Moves() {
		if mv == referral.Receive {
			continue // the bus makes that move, not a caseworker
		}
		huma.Register(api, huma.Operation{
			OperationID: string(mv) + "-referral",
			Method:      http.MethodPost,
			Path:        "/api/v1/referrals/{id}/" + string(mv),
			Summary:     moveSummary[mv],
			Description: "Answers 409 with the moves allowed now if the referral's status does not allow this one, and 403 if this agency is not the party that makes it.",
		}, s.moveHandler(mv))
	}
	huma.Register(api, huma.Operation{
		OperationID: "get-case",
		Method:      http.MethodGet,
		Path:        "/api/v1/cases/{id}",
		Summary:     "A case as this agency sees it: its referrals in and out, and their timeline",
	}, s.getCase)
	huma.Register(api, huma.Operation{
		OperationID: "list-rejections",
		Method:      http.MethodGet,
		Path:        "/api/v1/rejections",
		Summary:     "Events this agency refused, with the reason, newest first",
	}, s.listRejections)
	huma.Register(api, huma.Operation{
		OperationID: "list-escalations",
		Method:      http.MethodGet,
		Path:        "/api/v1/escalations",
		Summary:     "Overdue referrals of other agencies, for the coordinator agency (social by default)",
	}, s.listEscalations)
	huma.Register(api, huma.Operation{
		OperationID: "list-dead-letters",
		Method:      http.MethodGet,
		Path:        "/api/v1/dead-letters",
		Summary:     "Events the bus stopped redelivering here after every retry failed (for operators)",
	}, s.listDeadLetters)
	huma.Register(api, huma.Operation{
		OperationID: "redrive-dead-letters",
		Method:      http.MethodPost,
		Path:        "/api/v1/dead-letters/redrive",
		Summary:     "Apply the dead letters again, once the cause is fixed; each applies at most once",
	}, s.redrive)
	huma.Register(api, huma.Operation{
		OperationID: "get-directory",
		Method:      http.MethodGet,
		Path:        "/api/v1/directory",
		Summary:     "The services every agency offers, with free places (from the JetStream KV directory)",
	}, s.getDirectory)
	huma.Register(api, huma.Operation{
		OperationID:   "record-consent",
		Method:        http.MethodPost,
		Path:          "/api/v1/consents",
		Summary:       "Record a family's consent to share data with another agency",
		DefaultStatus: http.StatusCreated,
		MaxBodyBytes:  1 << 16,
	}, s.postConsent)
	huma.Register(api, huma.Operation{
		OperationID: "list-consents",
		Method:      http.MethodGet,
		Path:        "/api/v1/consents",
		Summary:     "Consents this agency recorded, newest first",
	}, s.listConsents)
	huma.Register(api, huma.Operation{
		OperationID: "get-consent",
		Method:      http.MethodGet,
		Path:        "/api/v1/consents/{id}",
		Summary:     "One consent",
	}, s.getConsent)
	huma.Register(api, huma.Operation{
		OperationID: "revoke-consent",
		Method:      http.MethodPost,
		Path:        "/api/v1/consents/{id}/revoke",
		Summary:     "Revoke a consent: open referrals made under it are cancelled, and their receivers redact what was shared",
	}, s.revokeConsent)
	huma.Register(api, huma.Operation{
		OperationID: "health",
		Method:      http.MethodGet,
		Path:        "/healthz",
		Summary:     "Liveness: the store answers",
	}, s.health)
	return mux
}

type postReferralInput struct {
	Body struct {
		ToAgency  string    `json:"to_agency" enum:"health,education,social,ngo" doc:"The agency asked to help."`
		Service   string    `json:"service" minLength:"1" maxLength:"100" doc:"The service asked for."`
		Note      string    `json:"note" minLength:"1" maxLength:"4000" doc:"What the receiving caseworker needs to know."`
		CaseID    uuid.UUID `json:"case_id,omitempty" required:"false" format:"uuid" doc:"The case this referral belongs to; omit to join the person's open case or start a new one."`
		PersonID  string    `json:"person_id,omitempty" required:"false" maxLength:"20" doc:"The Kazakh IIN (12 digits) or Kyrgyz PIN (14 digits) of the person referred. Only its keyed pseudonym is stored and sent, so agencies match the person without the id leaving this agency."`
		Work      *Work     `json:"work,omitempty" required:"false" doc:"This agency's own work the receiver needs: health sends its screening."`
		ConsentID uuid.UUID `json:"consent_id" format:"uuid" doc:"The family's consent to share with to_agency (POST /api/v1/consents): it must be neither revoked nor expired, and cover the data the referral shares (summary; identity with person_id)."`
	}
}

type referralOutput struct {
	Body Referral
}

type referralsOutput struct {
	Body struct {
		Referrals []Referral `json:"referrals"`
	}
}

type idInput struct {
	ID uuid.UUID `path:"id" doc:"The referral id."`
}

type listInput struct {
	Limit int `query:"limit" minimum:"1" maximum:"1000" default:"100"`
}

func (s *Service) postReferral(ctx context.Context, in *postReferralInput) (*referralOutput, error) {
	r, err := s.CreateReferral(ctx, NewReferral{ToAgency: in.Body.ToAgency, Service: in.Body.Service, Note: in.Body.Note, CaseID: in.Body.CaseID, PersonID: in.Body.PersonID, ConsentID: in.Body.ConsentID, Work: in.Body.Work})
	if err != nil {
		return nil, s.problem(err)
	}
	return &referralOutput{Body: r}, nil
}

func (s *Service) getReferral(ctx context.Context, in *idInput) (*referralOutput, error) {
	r, err := s.Referral(ctx, in.ID)
	if err != nil {
		return nil, s.problem(err)
	}
	return &referralOutput{Body: r}, nil
}

func (s *Service) listSent(ctx context.Context, in *listInput) (*referralsOutput, error) {
	rs, err := s.Sent(ctx, in.Limit)
	if err != nil {
		return nil, s.problem(err)
	}
	out := &referralsOutput{}
	out.Body.Referrals = rs
	return out, nil
}

func (s *Service) listInbox(ctx context.Context, in *listInput) (*referralsOutput, error) {
	rs, err := s.Inbox(ctx, in.Limit)
	if err != nil {
		return nil, s.problem(err)
	}
	out := &referralsOutput{}
	out.Body.Referrals = rs
	return out, nil
}

type rejectionsOutput struct {
	Body struct {
		Rejections []Rejection `json:"rejections"`
	}
}

func (s *Service) listRejections(ctx context.Context, in *listInput) (*rejectionsOutput, error) {
	rs, err := s.Rejections(ctx, in.Limit)
	if err != nil {
		return nil, s.problem(err)
	}
	out := &rejectionsOutput{}
	out.Body.Rejections = rs
	return out, nil
}

var moveSummary = map[referral.Move]string{
	referral.Accept:   "Accept a received referral (receiver)",
	referral.Decline:  "Decline a received referral, with reason_code and reason (receiver)",
	referral.Start:    "Start providing the service (receiver)",
	referral.Hold:     "Put the work on hold, with a reason (receiver)",
	referral.Resume:   "Resume work on hold (receiver)",
	referral.Complete: "Complete the referral, with its outcome (receiver)",
	referral.Fail:     "End the referral as failed, with a reason (receiver)",
	referral.Cancel:   "Cancel the referral, with a reason (sender)",
	referral.Forward:  "Pass the referral on to another agency in the same case, with to_agency and service (receiver)",
}

type moveInput struct {
	ID   uuid.UUID `path:"id" doc:"The referral id."`
	Body *moveBody
}

// moveBody is optional: accept, start and resume need nothing.
type moveBody struct {
	ReasonCode string    `json:"reason_code,omitempty" required:"false" enum:"no_capacity,not_eligible,out_of_area,duplicate,family_refused,other" doc:"Why it is declined."`
	Reason     string    `json:"reason,omitempty" required:"false" maxLength:"4000" doc:"Why it is declined, held, failed or cancelled."`
	Outcome    string    `json:"outcome,omitempty" required:"false" maxLength:"4000" doc:"What came of it (complete)."`
	Note       string    `json:"note,omitempty" required:"false" maxLength:"4000"`
	ToAgency   string    `json:"to_agency,omitempty" required:"false" enum:"health,education,social,ngo" doc:"Where to forward it (forward)."`
	Service    string    `json:"service,omitempty" required:"false" maxLength:"100" doc:"The service asked of the new agency (forward)."`
	ConsentID  uuid.UUID `json:"consent_id,omitempty" required:"false" format:"uuid" doc:"The family's consent, recorded here, to share with the new agency (forward)."`
	Work       *Work     `json:"work,omitempty" required:"false" doc:"This agency's own work, told to the other party: a shelter's placement (accept, required for a shelter), an assessment and learning plan, a benefit decision or a screening (complete)."`
}

func (s *Service) moveHandler(mv referral.Move) func(context.Context, *moveInput) (*referralOutput, error) {
	return func(ctx context.Context, in *moveInput) (*referralOutput, error) {
		if in.Body == nil {
			in.Body = &moveBody{}
		}
		r, err := s.Move(ctx, in.ID, mv, MoveInput{
			ReasonCode: in.Body.ReasonCode, Reason: in.Body.Reason, Outcome: in.Body.Outcome, Note: in.Body.Note,
			ToAgency: in.Body.ToAgency, Service: in.Body.Service, ConsentID: in.Body.ConsentID, Work: in.Body.Work,
		})
		if err != nil {
			return nil, s.problem(err)
		}
		return &referralOutput{Body: r}, nil
	}
}

type caseOutput struct {
	Body Case
}

func (s *Service) getCase(ctx context.Context, in *idInput) (*caseOutput, error) {
	c, err := s.Case(ctx, in.ID)
	if err != nil {
		return nil, s.problem(err)
	}
	return &caseOutput{Body: c}, nil
}

type escalationsOutput struct {
	Body struct {
		Escalations []Escalation `json:"escalations"`
	}
}

func (s *Service) listEscalations(ctx context.Context, in *listInput) (*escalationsOutput, error) {
	es, err := s.Escalations(ctx, in.Limit)
	if err != nil {
		return nil, s.problem(err)
	}
	out := &escalationsOutput{}
	out.Body.Escalations = es
	return out, nil
}

type deadLettersOutput struct {
	Body struct {
		DeadLetters []inbox.DeadLetter `json:"dead_letters"`
	}
}

func (s *Service) listDeadLetters(ctx context.Context, _ *struct{}) (*deadLettersOutput, error) {
	dl, err := s.DeadLetters(ctx)
	if err != nil {
		return nil, s.problem(err)
	}
	out := &deadLettersOutput{}
	out.Body.DeadLetters = dl
	return out, nil
}

type redriveOutput struct {
	Body struct {
		Settled int `json:"settled" doc:"How many dead letters were applied, rejected or found to be repeats; the rest still cannot apply."`
	}
}

func (s *Service) redrive(ctx context.Context, _ *struct{}) (*redriveOutput, error) {
	n, err := s.Redrive(ctx)
	if err != nil {
		return nil, s.problem(err)
	}
	out := &redriveOutput{}
	out.Body.Settled = n
	return out, nil
}

type healthOutput struct {
	Body struct {
		Agency string `json:"agency"`
		Status string `json:"status"`
	}
}

func (s *Service) health(ctx context.Context, _ *struct{}) (*healthOutput, error) {
	if err := s.pool.Ping(ctx); err != nil {
		return nil, s.problem(err)
	}
	out := &healthOutput{}
	out.Body.Agency, out.Body.Status = s.self, "ok"
	return out, nil
}

// problem is the one place that turns errors into RFC 9457 problems. Only
// the messages of known errors reach the client; anything else is logged
// and answered with a generic 500.
func (s *Service) problem(err error) error {
	// The sentinel names the kind; the person reads the rest.
	detail := func(sentinel error) string {
		return strings.TrimPrefix(err.Error(), sentinel.Error()+": ")
	}
	switch {
	case errors.Is(err, ErrNotFound):
		return huma.Error404NotFound(detail(ErrNotFound))
	case errors.Is(err, ErrInvalid):
		return huma.Error422UnprocessableEntity(detail(ErrInvalid))
	case errors.Is(err, ErrConflict):
		return huma.Error409Conflict(detail(ErrConflict))
	case errors.Is(err, ErrForbidden):
		return huma.Error403Forbidden(detail(ErrForbidden))
	default:
		s.log.Error("request failed", "err", err)
		return huma.Error500InternalServerError("internal error: the request was not applied; try again, and tell the operators if it persists")
	}
}

type postConsentInput struct {
	Body struct {
		GivenBy        string    `json:"given_by" minLength:"1" maxLength:"200" doc:"Who consented: the person or their legal representative. Stays in this agency."`
		PersonID       string    `json:"person_id,omitempty" required:"false" maxLength:"20" doc:"The IIN or PIN of the person it is about; only its keyed pseudonym is kept."`
		ToAgency       string    `json:"to_agency" enum:"health,education,social,ngo" doc:"The agency the family agrees to share with."`
		Purpose        string    `json:"purpose" minLength:"1" maxLength:"400" doc:"What the data may be used for."`
		DataCategories []string  `json:"data_categories" minItems:"1" uniqueItems:"true" enum:"summary,identity,health,education,social,shelter" doc:"What may be shared: summary (the referral's note), identity (the person key), and work records (health, education, social, shelter)."`
		ExpiresAt      time.Time `json:"expires_at" doc:"Until when; a referral after that is refused."`
	}
}

type consentOutput struct {
	Body Consent
}

func (s *Service) postConsent(ctx context.Context, in *postConsentInput) (*consentOutput, error) {
	c, err := s.RecordConsent(ctx, NewConsent{
		GivenBy: in.Body.GivenBy, PersonID: in.Body.PersonID, ToAgency: in.Body.ToAgency, Purpose: in.Body.Purpose,
		DataCategories: in.Body.DataCategories, ExpiresAt: in.Body.ExpiresAt,
	})
	if err != nil {
		return nil, s.problem(err)
	}
	return &consentOutput{Body: c}, nil
}

type consentsOutput struct {
	Body struct {
		Consents []Consent `json:"consents"`
	}
}

func (s *Service) listConsents(ctx context.Context, in *listInput) (*consentsOutput, error) {
	cs, err := s.Consents(ctx, in.Limit)
	if err != nil {
		return nil, s.problem(err)
	}
	out := &consentsOutput{}
	out.Body.Consents = cs
	return out, nil
}

type consentIDInput struct {
	ID uuid.UUID `path:"id" doc:"The consent id."`
}

func (s *Service) getConsent(ctx context.Context, in *consentIDInput) (*consentOutput, error) {
	c, err := s.ConsentByID(ctx, in.ID)
	if err != nil {
		return nil, s.problem(err)
	}
	return &consentOutput{Body: c}, nil
}

type revokeConsentInput struct {
	ID   uuid.UUID `path:"id" doc:"The consent id."`
	Body struct {
		Reason string `json:"reason" minLength:"1" maxLength:"4000" doc:"Why, as the family said it."`
	}
}

func (s *Service) revokeConsent(ctx context.Context, in *revokeConsentInput) (*consentOutput, error) {
	c, err := s.RevokeConsent(ctx, in.ID, in.Body.Reason)
	if err != nil {
		return nil, s.problem(err)
	}
	return &consentOutput{Body: c}, nil
}

type directoryOutput struct {
	Body struct {
		Agencies []Listing `json:"agencies"`
	}
}

func (s *Service) getDirectory(ctx context.Context, _ *struct{}) (*directoryOutput, error) {
	ls, err := s.Directory(ctx)
	if err != nil {
		return nil, s.problem(err)
	}
	out := &directoryOutput{}
	out.Body.Agencies = ls
	return out, nil
}
