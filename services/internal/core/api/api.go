// Package api is a node's HTTP API: huma handlers that call the
// application's commands and queries (package app) and answer RFC 9457
// problems. It serves its OpenAPI document at /openapi.json.
package api

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/danielgtaylor/huma/v2"
	"github.com/danielgtaylor/huma/v2/adapters/humago"
	"github.com/google/uuid"

	"github.com/refbus/refbus/pkg/inbox"
	"github.com/refbus/refbus/pkg/referral"
	"github.com/refbus/refbus/schemas"
	"github.com/refbus/refbus/services/internal/core/app"
	"github.com/refbus/refbus/services/internal/core/directory"
)

// Ops are the operators' commands of a node: its bus's dead letters, and
// whether its store answers.
type Ops interface {
	DeadLetters(ctx context.Context) ([]inbox.DeadLetter, error)
	Redrive(ctx context.Context) (int, error)
	Ping(ctx context.Context) error
}

// handlers serve the API of one node.
type handlers struct {
	app *app.App
	ops Ops
	log *slog.Logger
}

// New builds the HTTP API of the node a runs. huma validates requests
// against the operations' schemas, answers RFC 9457 problems, and serves
// the OpenAPI document at /openapi.json; the API is returned too, for the
// UI to document its own routes in it.
func New(a *app.App, ops Ops, log *slog.Logger) (http.Handler, huma.API) {
	return build(a.Node(), &handlers{app: a, ops: ops, log: log})
}

// Document is the OpenAPI document New serves for node, built without a
// store or a bus: for linters and client generators (cmd/openapi). The
// caseworker UI adds its routes to it when it is mounted (web.Document).
func Document(node string) *huma.OpenAPI {
	_, api := build(node, &handlers{})
	return api.OpenAPI()
}

// The security schemes of the document: how package web, the sign-in in
// front of the API, lets a request through.
const (
	bearerAuth  = "bearer"  // an agency system's bearer JWT
	sessionAuth = "session" // a caseworker's session cookie
)

// The tags of the API's operations.
const (
	tagReferrals = "referrals"
	tagConsents  = "consents"
	tagDirectory = "directory"
	tagOperators = "operators"
)

// build registers the operations of node's API on a new mux; s serves them.
func build(node string, s *handlers) (http.Handler, huma.API) {
	mux := http.NewServeMux()
	cfg := huma.DefaultConfig("refbus "+node, "1.0.0")
	cfg.Info.Description = "The referral API of the node " + node + ": referrals to and from the other agencies' nodes, the families' consents under which they go, and the directory of what each node offers. " +
		"Every operation but the liveness probe needs an agency system's bearer token or a caseworker's session; errors are RFC 9457 problems (application/problem+json)."
	// Each node serves its own document, so the server is wherever the
	// document was fetched from; a node's address is its deployment's
	// (make run: http://127.0.0.1:8081 to 8084).
	cfg.Servers = []*huma.Server{{URL: "/", Description: "The node that serves this document."}}
	cfg.Components.SecuritySchemes = map[string]*huma.SecurityScheme{
		bearerAuth: {
			Type: "http", Scheme: "bearer", BearerFormat: "JWT",
			Description: "An agency system's token: a JWT signed with HS256 under the agency's API key (REFBUS_API_KEY), " +
				`with iss "refbus", aud "refbus-api", exp, sub (the system), and the claims agency (this node), role (caseworker, supervisor or auditor) and, for a system of one organization of the node, org.`,
		},
		sessionAuth: {
			// The cookie package web sets when a caseworker signs in
			// (apiclient's TestContract checks that the names agree).
			Type: "apiKey", In: "cookie", Name: "refbus_" + node + "_session",
			Description: "A caseworker's session, set by signing in to the UI (POST /ui/login, or the agency's OIDC provider through /ui/oidc/login); it ends after 10 hours or at sign-out.",
		},
	}
	cfg.Security = []map[string][]string{{bearerAuth: {}}, {sessionAuth: {}}}
	cfg.Tags = []*huma.Tag{
		{Name: tagReferrals, Description: "Referrals this node sent and received, their moves, and the cases they belong to."},
		{Name: tagConsents, Description: "The families' consents to share their data with an organization of another node, under which referrals go."},
		{Name: tagDirectory, Description: "What every node of the network offers."},
		{Name: tagOperators, Description: "For the node's operators: events refused or stuck, and liveness."},
	}
	// uuid.UUID is text to huma; the contract says which text.
	cfg.Components.Schemas.RegisterTypeAlias(reflect.TypeFor[uuid.UUID](), reflect.TypeFor[uuidText]())
	api := humago.New(mux, cfg)

	register(api, huma.Operation{
		OperationID:   "create-referral",
		Method:        http.MethodPost,
		Path:          "/api/v1/referrals",
		Summary:       "Refer a case to an organization of another node",
		Tags:          []string{tagReferrals},
		DefaultStatus: http.StatusCreated,
		MaxBodyBytes:  1 << 20,
	}, "The referral, with status requested until the receiving node's receipt comes back.", writes(problems{
		http.StatusBadRequest:            whyBadJSON,
		http.StatusForbidden:             whyForbiddenWrite + " Or the caller works for one organization of this node, and from_org names another.",
		http.StatusRequestEntityTooLarge: "The body is over 1 MiB.",
		http.StatusUnprocessableEntity: "The body breaks the schema, or the referral cannot go: to_org is not an organization the directory lists (or is one of this node's), it does not offer the service, " +
			"from_org is not an organization of this node, or the consent is missing, revoked, expired, for another organization or person, or does not cover what the referral shares. The detail says which.",
		http.StatusServiceUnavailable: "The node is stopping: nothing was written; try again in a moment.",
	}), s.postReferral)
	register(api, huma.Operation{
		OperationID: "get-referral",
		Method:      http.MethodGet,
		Path:        "/api/v1/referrals/{id}",
		Summary:     "A referral this node sent or received",
		Tags:        []string{tagReferrals},
	}, "The referral, as this node sees it.", reads(problems{
		http.StatusNotFound:            "This node neither sent nor received a referral with that id (for a caller of one of its organizations: that organization did not).",
		http.StatusUnprocessableEntity: "The id is not a UUID.",
	}), s.getReferral)
	register(api, huma.Operation{
		OperationID: "list-sent",
		Method:      http.MethodGet,
		Path:        "/api/v1/referrals",
		Summary:     "Referrals this node sent, newest first, with their live status (of one of its organizations with org; of the caller's own, for a caller of one)",
		Tags:        []string{tagReferrals},
	}, "The referrals, newest first.", reads(problems{http.StatusForbidden: whyForbiddenOrg, http.StatusUnprocessableEntity: whyLimitOrg}), s.listSent)
	register(api, huma.Operation{
		OperationID: "list-inbox",
		Method:      http.MethodGet,
		Path:        "/api/v1/inbox",
		Summary:     "Referrals this node received, newest first (for one of its organizations with org; for the caller's own, for a caller of one)",
		Tags:        []string{tagReferrals},
	}, "The referrals, newest first.", reads(problems{http.StatusForbidden: whyForbiddenOrg, http.StatusUnprocessableEntity: whyLimitOrg}), s.listInbox)
	for _, mv := range referral.Moves() {
		if mv == referral.Receive {
			continue // the bus makes that move, not a caseworker
		}
		register(api, huma.Operation{
			OperationID: string(mv) + "-referral",
			Method:      http.MethodPost,
			Path:        "/api/v1/referrals/{id}/" + string(mv),
			Summary:     moveSummary[mv],
			Description: "Answers 409 with the moves allowed now if the referral's status does not allow this one, and 403 if this node is not the party that makes it.",
			Tags:        []string{tagReferrals},
		}, "The referral after the move; the move travels to the other party, which sees the same status.", writes(problems{
			http.StatusBadRequest:            whyBadJSON,
			http.StatusForbidden:             whyForbiddenWrite + " Or the move is the other party's: the receiver accepts, declines, starts, holds, resumes, completes, fails and forwards; the sender cancels.",
			http.StatusNotFound:              "This node neither sent nor received a referral with that id (for a caller of one of its organizations: that organization did not).",
			http.StatusConflict:              "The referral's status does not allow this move now (the detail lists the moves it allows), the family revoked its consent, or (accept at a shelter) no bed is free.",
			http.StatusRequestEntityTooLarge: "The body is over 1 MiB.",
			http.StatusUnprocessableEntity:   "The id or the body breaks the schema, or the move lacks what it needs (a reason_code and reason to decline, an outcome to complete, to_org, service and consent_id to forward (to_org an organization of another node that offers the service), a placement to accept at a shelter).",
		}), s.moveHandler(mv))
	}
	register(api, huma.Operation{
		OperationID: "get-case",
		Method:      http.MethodGet,
		Path:        "/api/v1/cases/{id}",
		Summary:     "A case as this node sees it: its referrals in and out, and their timeline",
		Tags:        []string{tagReferrals},
	}, "The case: the referrals of it this node sent or received, and their moves in order.", reads(problems{
		http.StatusNotFound:            "This node has no referral in a case with that id.",
		http.StatusUnprocessableEntity: "The id is not a UUID.",
	}), s.getCase)
	register(api, huma.Operation{
		OperationID: "list-rejections",
		Method:      http.MethodGet,
		Path:        "/api/v1/rejections",
		Summary:     "Events this node refused, with the reason, newest first",
		Tags:        []string{tagOperators},
	}, "The refused events, newest first.", reads(problems{http.StatusUnprocessableEntity: whyLimit}), s.listRejections)
	register(api, huma.Operation{
		OperationID: "list-escalations",
		Method:      http.MethodGet,
		Path:        "/api/v1/escalations",
		Summary:     "Overdue referrals of other nodes, for the coordinator node (REFBUS_COORDINATOR)",
		Tags:        []string{tagReferrals},
	}, "The overdue referrals, newest deadline first; none unless this node is the coordinator.", reads(problems{http.StatusUnprocessableEntity: whyLimit}), s.listEscalations)
	register(api, huma.Operation{
		OperationID: "list-case-access",
		Method:      http.MethodGet,
		Path:        "/api/v1/access-log",
		Summary:     "Who opened which case and when (auditors and supervisors), newest first",
		Tags:        []string{tagOperators},
	}, "The openings of cases, newest first: each read of a referral or a case through the API and each referral page opened in the UI.", reads(problems{
		http.StatusForbidden:           "The token or session is another agency's, or its role is caseworker: only auditors and supervisors read the access log.",
		http.StatusUnprocessableEntity: "limit is not between 1 and 1000, or case_id is not a UUID.",
	}), s.listCaseAccess)
	register(api, huma.Operation{
		OperationID: "list-dead-letters",
		Method:      http.MethodGet,
		Path:        "/api/v1/dead-letters",
		Summary:     "Events the bus stopped redelivering here after every retry failed (for operators)",
		Tags:        []string{tagOperators},
	}, "The dead letters not yet re-driven.", reads(nil), s.listDeadLetters)
	register(api, huma.Operation{
		OperationID: "redrive-dead-letters",
		Method:      http.MethodPost,
		Path:        "/api/v1/dead-letters/redrive",
		Summary:     "Apply the dead letters again, once the cause is fixed; each applies at most once",
		Tags:        []string{tagOperators},
	}, "How many dead letters settled.", writes(problems{
		http.StatusForbidden: "The token or session is another agency's, or its role is not supervisor: only supervisors re-drive dead letters.",
	}), s.redrive)
	register(api, huma.Operation{
		OperationID: "get-directory",
		Method:      http.MethodGet,
		Path:        "/api/v1/directory",
		Summary:     "The organizations every node hosts and the services they offer, with their deadlines and free places (from the JetStream KV directory)",
		Tags:        []string{tagDirectory},
	}, "Every node's listing.", reads(nil), s.getDirectory)
	register(api, huma.Operation{
		OperationID:   "record-consent",
		Method:        http.MethodPost,
		Path:          "/api/v1/consents",
		Summary:       "Record a family's consent to share data with an organization of another node",
		Tags:          []string{tagConsents},
		DefaultStatus: http.StatusCreated,
		MaxBodyBytes:  1 << 16,
	}, "The consent, with the id a referral names as consent_id.", writes(problems{
		http.StatusBadRequest:            whyBadJSON,
		http.StatusRequestEntityTooLarge: "The body is over 64 KiB.",
		http.StatusUnprocessableEntity:   "The body breaks the schema, to_org is not an organization of another node the directory lists, or expires_at is not in the future.",
	}), s.postConsent)
	register(api, huma.Operation{
		OperationID: "list-consents",
		Method:      http.MethodGet,
		Path:        "/api/v1/consents",
		Summary:     "Consents this node recorded, newest first",
		Tags:        []string{tagConsents},
	}, "The consents, newest first.", reads(problems{http.StatusUnprocessableEntity: whyLimit}), s.listConsents)
	register(api, huma.Operation{
		OperationID: "get-consent",
		Method:      http.MethodGet,
		Path:        "/api/v1/consents/{id}",
		Summary:     "One consent",
		Tags:        []string{tagConsents},
	}, "The consent.", reads(problems{
		http.StatusNotFound:            "This node recorded no consent with that id.",
		http.StatusUnprocessableEntity: "The id is not a UUID.",
	}), s.getConsent)
	register(api, huma.Operation{
		OperationID: "revoke-consent",
		Method:      http.MethodPost,
		Path:        "/api/v1/consents/{id}/revoke",
		Summary:     "Revoke a consent: open referrals made under it are cancelled, and their receivers redact what was shared",
		Tags:        []string{tagConsents},
	}, "The consent, revoked.", writes(problems{
		http.StatusBadRequest:            whyBadJSON,
		http.StatusNotFound:              "This node recorded no consent with that id.",
		http.StatusConflict:              "The consent was already revoked.",
		http.StatusRequestEntityTooLarge: "The body is over 1 MiB.",
		http.StatusUnprocessableEntity:   "The id is not a UUID, or the body has no reason.",
	}), s.revokeConsent)
	register(api, huma.Operation{
		OperationID: "disclose-address",
		Method:      http.MethodPost,
		Path:        "/api/v1/referrals/{id}/disclose-address",
		Summary:     "A shelter discloses where a family it placed stays to one organization of another node, for a purpose and until a time",
		Description: "The address and the purpose travel sealed to that organization's node alone; it shows them to that organization's users only (GET /api/v1/disclosures), and forgets them at the time given. The referring organization is not told.",
		Tags:        []string{tagReferrals},
	}, "The disclosure, as the shelter keeps it (without the address).", writes(problems{
		http.StatusBadRequest:            whyBadJSON,
		http.StatusNotFound:              "This node has no referral with that id (for a caller of one organization: that organization does not).",
		http.StatusConflict:              "The referral has no placement with an address at this node.",
		http.StatusRequestEntityTooLarge: "The body is over 1 MiB.",
		http.StatusUnprocessableEntity:   "No purpose, a time past or after the stay ends, or an organization the directory does not list or of this node.",
	}), s.discloseAddress)
	register(api, huma.Operation{
		OperationID: "list-disclosures",
		Method:      http.MethodGet,
		Path:        "/api/v1/disclosures",
		Summary:     "Addresses shelters disclosed to the caller's organization (with the address), and those this node's shelters disclosed (without it), until they expire",
		Tags:        []string{tagReferrals},
	}, "The disclosures, newest first.", reads(problems{}), s.listDisclosures)
	register(api, huma.Operation{
		OperationID: "erase-person",
		Method:      http.MethodPost,
		Path:        "/api/v1/people/erase",
		Summary:     "Erase a person on their request: every referral about them here is ended, what it said goes here and at the other party, and its data key is destroyed (supervisors)",
		Description: "The referrals' status and history stay as the audit trail; their events on the stream can no longer be opened by anyone once the nodes' retired sealing keys are destroyed. The national id is only used to find the referrals: it is not kept.",
		Tags:        []string{tagConsents},
	}, "What was erased.", writes(problems{
		http.StatusBadRequest:            whyBadJSON,
		http.StatusNotFound:              "This node holds no referral about this person.",
		http.StatusRequestEntityTooLarge: "The body is over 1 MiB.",
		http.StatusUnprocessableEntity:   "The national id is not valid, this node has no network key, or the body has no reason.",
	}), s.erasePerson)
	register(api, huma.Operation{
		OperationID: "health",
		Method:      http.MethodGet,
		Path:        "/healthz",
		Summary:     "Liveness: the store answers",
		Tags:        []string{tagOperators},
		Security:    []map[string][]string{}, // anyone may ask
	}, "The node and its store answer.", problems{
		http.StatusUnauthorized: "The probe needs no token, but one that does not verify is refused all the same.",
		http.StatusForbidden:    "The probe needs no token, but another agency's is refused all the same.",
	}, s.health)
	return mux, api
}

// problems are the RFC 9457 problems an operation may answer besides 500,
// by status, with why.
type problems map[int]string

// Why the sign-in in front of the API (package web) refuses a request, and
// why huma does.
const (
	whyUnauthorized   = "No bearer token or session, or a token that does not verify (expired, or not signed with this agency's API key)."
	whyForbiddenRead  = "The token or session is another agency's."
	whyForbiddenWrite = "The token or session is another agency's, or its role may not make changes (auditors only read)."
	whyBadJSON        = "The body is not JSON."
	whyLimit          = "limit is not between 1 and 1000."
	whyLimitOrg       = "limit is not between 1 and 1000, or org is not an organization of this node."
	whyForbiddenOrg   = "The token or session is another agency's, or of one organization of this node, and org names another."
)

// reads are the problems of an operation that reads: those of the sign-in,
// and more.
func reads(more problems) problems {
	return merge(problems{http.StatusUnauthorized: whyUnauthorized, http.StatusForbidden: whyForbiddenRead}, more)
}

// writes are the problems of an operation that changes something: those of
// the sign-in, roles included, and more.
func writes(more problems) problems {
	return merge(problems{http.StatusUnauthorized: whyUnauthorized, http.StatusForbidden: whyForbiddenWrite}, more)
}

func merge(base, more problems) problems {
	for code, why := range more {
		base[code] = why
	}
	return base
}

// register registers op, documenting its success response with answers
// and each of its problems (huma's Operation.Errors, with huma's error
// model as application/problem+json) with why it happens rather than its
// status text.
func register[I, O any](api huma.API, op huma.Operation, answers string, why problems, h func(context.Context, *I) (*O, error)) {
	status := op.DefaultStatus
	if status == 0 {
		status = http.StatusOK
	}
	op.Responses = map[string]*huma.Response{strconv.Itoa(status): {Description: answers}}
	for code := range why {
		op.Errors = append(op.Errors, code)
	}
	slices.Sort(op.Errors)
	huma.Register(api, op, h)
	// huma added 422 for parameters and bodies, and 500, to op.Errors.
	why = merge(problems{http.StatusInternalServerError: "Something failed in the node: the request was not applied; try again, and tell the operators if it persists."}, why)
	item := api.OpenAPI().Paths[op.Path]
	registered := map[string]*huma.Operation{http.MethodGet: item.Get, http.MethodPost: item.Post}[op.Method]
	if registered == nil {
		panic("api: register knows GET and POST operations only, not " + op.Method)
	}
	for code, res := range registered.Responses {
		if c, err := strconv.Atoi(code); err == nil && c >= 400 {
			d, ok := why[c]
			if !ok {
				panic(fmt.Sprintf("api: %s answers %d, and register was not told why", op.OperationID, c))
			}
			res.Description = d
		}
	}
}

// uuidText is how the contract writes a uuid.UUID: a string in the UUID
// format.
type uuidText string

// Schema is a string in the UUID format.
func (uuidText) Schema(huma.Registry) *huma.Schema {
	return &huma.Schema{Type: huma.TypeString, Format: "uuid"}
}

type postReferralInput struct {
	Body struct {
		ToOrg     string        `json:"to_org" minLength:"1" maxLength:"64" doc:"The organization asked to help, of another node, as the directory lists it (GET /api/v1/directory); the referral goes to the node that hosts it."`
		FromOrg   string        `json:"from_org,omitempty" required:"false" maxLength:"64" doc:"The organization of this node that refers: the caller's own for a caller of one organization; otherwise the one named here, by default the node's first."`
		Service   string        `json:"service" minLength:"1" maxLength:"100" doc:"The service asked for."`
		Note      string        `json:"note" minLength:"1" maxLength:"4000" doc:"What the receiving caseworker needs to know."`
		Urgency   string        `json:"urgency,omitempty" required:"false" enum:"routine,urgent" doc:"How soon the family needs the service: urgent comes first in the receiver's needs-action view. Omitted: urgent for a service that must be accepted within a day (a crisis service), else routine."`
		CaseID    uuid.UUID     `json:"case_id,omitempty" required:"false" format:"uuid" doc:"The case this referral belongs to; omit to join the person's open case or start a new one."`
		PersonID  string        `json:"person_id,omitempty" required:"false" maxLength:"20" doc:"The Kazakh IIN (12 digits) or Kyrgyz PIN (14 digits) of the person referred. Only its keyed pseudonym is stored and sent, so nodes match the person without the id leaving this node."`
		Work      *schemas.Work `json:"work,omitempty" required:"false" doc:"This node's own work the receiver needs: health sends its screening."`
		ConsentID uuid.UUID     `json:"consent_id" format:"uuid" doc:"The family's consent to share with to_org (POST /api/v1/consents): it must be neither revoked nor expired, and cover the data the referral shares (summary; identity with person_id; the category of each work record)."`
	}
}

type referralOutput struct {
	Body app.Referral
}

type referralsOutput struct {
	Body struct {
		Referrals []app.Referral `json:"referrals"`
	}
}

type idInput struct {
	ID uuid.UUID `path:"id" doc:"The referral id."`
}

type caseIDInput struct {
	ID uuid.UUID `path:"id" doc:"The case id."`
}

type listInput struct {
	Limit int `query:"limit" minimum:"1" maximum:"1000" default:"100"`
}

type orgListInput struct {
	Limit int    `query:"limit" minimum:"1" maximum:"1000" default:"100"`
	Org   string `query:"org" maxLength:"64" doc:"One of this node's organizations; a caller of one organization sees its own only."`
}

func (s *handlers) postReferral(ctx context.Context, in *postReferralInput) (*referralOutput, error) {
	r, err := s.app.CreateReferral(ctx, app.NewReferral{ToOrg: in.Body.ToOrg, FromOrg: in.Body.FromOrg, Service: in.Body.Service, Note: in.Body.Note, Urgency: in.Body.Urgency, CaseID: in.Body.CaseID, PersonID: in.Body.PersonID, ConsentID: in.Body.ConsentID, Work: in.Body.Work})
	if err != nil {
		return nil, s.problem(err)
	}
	return &referralOutput{Body: r}, nil
}

func (s *handlers) getReferral(ctx context.Context, in *idInput) (*referralOutput, error) {
	r, err := s.app.Referral(ctx, in.ID)
	if err != nil {
		return nil, s.problem(err)
	}
	if err := s.app.LogCaseAccess(ctx, r.CaseID, r.ID, app.UserOf(ctx), app.ViaAPI); err != nil {
		return nil, s.problem(err)
	}
	return &referralOutput{Body: r}, nil
}

func (s *handlers) listSent(ctx context.Context, in *orgListInput) (*referralsOutput, error) {
	rs, err := s.app.Sent(ctx, in.Org, in.Limit)
	if err != nil {
		return nil, s.problem(err)
	}
	out := &referralsOutput{}
	out.Body.Referrals = rs
	return out, nil
}

func (s *handlers) listInbox(ctx context.Context, in *orgListInput) (*referralsOutput, error) {
	rs, err := s.app.Inbox(ctx, in.Org, in.Limit)
	if err != nil {
		return nil, s.problem(err)
	}
	out := &referralsOutput{}
	out.Body.Referrals = rs
	return out, nil
}

type rejectionsOutput struct {
	Body struct {
		Rejections []inbox.Rejection `json:"rejections"`
	}
}

func (s *handlers) listRejections(ctx context.Context, in *listInput) (*rejectionsOutput, error) {
	rs, err := s.app.Rejections(ctx, in.Limit)
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
	referral.Forward:  "Pass the referral on to an organization of another node in the same case, with to_org and service (receiver)",
}

type moveInput struct {
	ID   uuid.UUID `path:"id" doc:"The referral id."`
	Body *moveBody
}

// moveBody is optional: accept, start and resume need nothing.
type moveBody struct {
	ReasonCode reasonCode    `json:"reason_code,omitempty" required:"false" doc:"Why it is declined."`
	Reason     string        `json:"reason,omitempty" required:"false" maxLength:"4000" doc:"Why it is declined, held, failed or cancelled."`
	Outcome    string        `json:"outcome,omitempty" required:"false" maxLength:"4000" doc:"What came of it (complete)."`
	Note       string        `json:"note,omitempty" required:"false" maxLength:"4000"`
	ToOrg      string        `json:"to_org,omitempty" required:"false" maxLength:"64" doc:"The organization of another node to forward it to, as the directory lists it (forward)."`
	Service    string        `json:"service,omitempty" required:"false" maxLength:"100" doc:"The service asked of that organization (forward)."`
	ConsentID  uuid.UUID     `json:"consent_id,omitempty" required:"false" format:"uuid" doc:"The family's consent, recorded here, to share with that organization (forward)."`
	Work       *schemas.Work `json:"work,omitempty" required:"false" doc:"This node's own work, told to the other party: a shelter's placement (accept, required for a shelter), an assessment and learning plan, a benefit decision or a screening (complete)."`
}

func (s *handlers) moveHandler(mv referral.Move) func(context.Context, *moveInput) (*referralOutput, error) {
	return func(ctx context.Context, in *moveInput) (*referralOutput, error) {
		if in.Body == nil {
			in.Body = &moveBody{}
		}
		r, err := s.app.Move(ctx, in.ID, mv, app.MoveInput{
			ReasonCode: string(in.Body.ReasonCode), Reason: in.Body.Reason, Outcome: in.Body.Outcome, Note: in.Body.Note,
			ToOrg: in.Body.ToOrg, Service: in.Body.Service, ConsentID: in.Body.ConsentID, Work: in.Body.Work,
		})
		if err != nil {
			return nil, s.problem(err)
		}
		return &referralOutput{Body: r}, nil
	}
}

type caseOutput struct {
	Body app.Case
}

func (s *handlers) getCase(ctx context.Context, in *caseIDInput) (*caseOutput, error) {
	c, err := s.app.Case(ctx, in.ID)
	if err != nil {
		return nil, s.problem(err)
	}
	if err := s.app.LogCaseAccess(ctx, in.ID, uuid.Nil, app.UserOf(ctx), app.ViaAPI); err != nil {
		return nil, s.problem(err)
	}
	return &caseOutput{Body: c}, nil
}

type escalationsOutput struct {
	Body struct {
		Escalations []app.Escalation `json:"escalations"`
	}
}

func (s *handlers) listEscalations(ctx context.Context, in *listInput) (*escalationsOutput, error) {
	es, err := s.app.Escalations(ctx, in.Limit)
	if err != nil {
		return nil, s.problem(err)
	}
	out := &escalationsOutput{}
	out.Body.Escalations = es
	return out, nil
}

type caseAccessInput struct {
	Limit    int       `query:"limit" minimum:"1" maximum:"1000" default:"100"`
	CaseID   string    `query:"case_id" format:"uuid" doc:"Only the openings of this case."`
	Username string    `query:"username" maxLength:"200" doc:"Only the openings by this user or token subject."`
	BeforeID int64     `query:"before_id" minimum:"0" doc:"Only openings older than the one with this id (the last id of the page before), to page back."`
	Before   time.Time `query:"before" required:"false" doc:"With before_id: the at of that opening."`
}

type caseAccessOutput struct {
	Body struct {
		Access []app.CaseAccess `json:"access"`
	}
}

func (s *handlers) listCaseAccess(ctx context.Context, in *caseAccessInput) (*caseAccessOutput, error) {
	f := app.AccessFilter{Username: in.Username, Limit: in.Limit}
	if in.CaseID != "" {
		id, err := uuid.Parse(in.CaseID)
		if err != nil {
			return nil, huma.Error422UnprocessableEntity("case_id is not a UUID")
		}
		f.CaseID = id
	}
	if in.BeforeID > 0 && !in.Before.IsZero() {
		f.BeforeAt, f.BeforeID = &in.Before, in.BeforeID
	}
	rows, err := s.app.AccessLog(ctx, f)
	if err != nil {
		return nil, s.problem(err)
	}
	out := &caseAccessOutput{}
	out.Body.Access = rows
	return out, nil
}

type deadLettersOutput struct {
	Body struct {
		DeadLetters []inbox.DeadLetter `json:"dead_letters"`
	}
}

func (s *handlers) listDeadLetters(ctx context.Context, _ *struct{}) (*deadLettersOutput, error) {
	dl, err := s.ops.DeadLetters(ctx)
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

func (s *handlers) redrive(ctx context.Context, _ *struct{}) (*redriveOutput, error) {
	n, err := s.ops.Redrive(ctx)
	if err != nil {
		return nil, s.problem(err)
	}
	out := &redriveOutput{}
	out.Body.Settled = n
	return out, nil
}

type healthOutput struct {
	Body struct {
		Node   string `json:"node"`
		Status string `json:"status"`
	}
}

func (s *handlers) health(ctx context.Context, _ *struct{}) (*healthOutput, error) {
	if err := s.ops.Ping(ctx); err != nil {
		return nil, s.problem(err)
	}
	out := &healthOutput{}
	out.Body.Node, out.Body.Status = s.app.Node(), "ok"
	return out, nil
}

// problem is the one place that turns errors into RFC 9457 problems. Only
// the messages of known errors reach the client; anything else is logged
// and answered with a generic 500.
func (s *handlers) problem(err error) error {
	// The sentinel names the kind; the person reads the rest.
	detail := func(sentinel error) string {
		return strings.TrimPrefix(err.Error(), sentinel.Error()+": ")
	}
	switch {
	case errors.Is(err, app.ErrNotFound):
		return huma.Error404NotFound(detail(app.ErrNotFound))
	case errors.Is(err, app.ErrInvalid):
		return huma.Error422UnprocessableEntity(detail(app.ErrInvalid))
	case errors.Is(err, app.ErrConflict):
		return huma.Error409Conflict(detail(app.ErrConflict))
	case errors.Is(err, app.ErrForbidden):
		return huma.Error403Forbidden(detail(app.ErrForbidden))
	case errors.Is(err, app.ErrStopped):
		return huma.Error503ServiceUnavailable("the node is stopping: the request was not applied; try again in a moment")
	default:
		s.log.Error("request failed", "err", err)
		return huma.Error500InternalServerError("internal error: the request was not applied; try again, and tell the operators if it persists")
	}
}

type postConsentInput struct {
	Body struct {
		GivenBy        string     `json:"given_by" minLength:"1" maxLength:"200" doc:"Who consented: the person or their legal representative. Stays in this node."`
		PersonID       string     `json:"person_id,omitempty" required:"false" maxLength:"20" doc:"The IIN or PIN of the person it is about; only its keyed pseudonym is kept."`
		ToOrg          string     `json:"to_org" minLength:"1" maxLength:"64" doc:"The organization of another node the family agrees to share with, as the directory lists it."`
		Purpose        string     `json:"purpose" minLength:"1" maxLength:"400" doc:"What the data may be used for."`
		DataCategories []category `json:"data_categories" minItems:"1" uniqueItems:"true" doc:"What may be shared: summary (the referral's note), identity (the person key), and the category of each work record (health, education, social, shelter)."`
		ExpiresAt      time.Time  `json:"expires_at" doc:"Until when; a referral after that is refused."`
	}
}

type consentOutput struct {
	Body app.Consent
}

func (s *handlers) postConsent(ctx context.Context, in *postConsentInput) (*consentOutput, error) {
	cats := make([]string, len(in.Body.DataCategories))
	for i, c := range in.Body.DataCategories {
		cats[i] = string(c)
	}
	c, err := s.app.RecordConsent(ctx, app.NewConsent{
		GivenBy: in.Body.GivenBy, PersonID: in.Body.PersonID, ToOrg: in.Body.ToOrg, Purpose: in.Body.Purpose,
		DataCategories: cats, ExpiresAt: in.Body.ExpiresAt,
	})
	if err != nil {
		return nil, s.problem(err)
	}
	return &consentOutput{Body: c}, nil
}

type consentsOutput struct {
	Body struct {
		Consents []app.Consent `json:"consents"`
	}
}

func (s *handlers) listConsents(ctx context.Context, in *listInput) (*consentsOutput, error) {
	cs, err := s.app.Consents(ctx, in.Limit)
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

func (s *handlers) getConsent(ctx context.Context, in *consentIDInput) (*consentOutput, error) {
	c, err := s.app.ConsentByID(ctx, in.ID)
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

func (s *handlers) revokeConsent(ctx context.Context, in *revokeConsentInput) (*consentOutput, error) {
	c, err := s.app.RevokeConsent(ctx, in.ID, in.Body.Reason)
	if err != nil {
		return nil, s.problem(err)
	}
	return &consentOutput{Body: c}, nil
}

type discloseInput struct {
	ID   uuid.UUID `path:"id" doc:"The referral the family was placed under."`
	Body struct {
		ToOrg   string    `json:"to_org" minLength:"1" maxLength:"64" doc:"The one organization, of another node, that may see the address."`
		Purpose string    `json:"purpose" minLength:"1" maxLength:"400" doc:"What it is disclosed for, such as a patronage nurse's home visit."`
		Until   time.Time `json:"until" doc:"When that organization's node forgets it; at most the end of the stay."`
	}
}

type disclosureOutput struct {
	Body app.Disclosure
}

func (s *handlers) discloseAddress(ctx context.Context, in *discloseInput) (*disclosureOutput, error) {
	d, err := s.app.DiscloseAddress(ctx, in.ID, app.NewDisclosure{ToOrg: in.Body.ToOrg, Purpose: in.Body.Purpose, Until: in.Body.Until})
	if err != nil {
		return nil, s.problem(err)
	}
	return &disclosureOutput{Body: d}, nil
}

type disclosuresOutput struct {
	Body struct {
		Disclosures []app.Disclosure `json:"disclosures"`
	}
}

func (s *handlers) listDisclosures(ctx context.Context, _ *struct{}) (*disclosuresOutput, error) {
	ds, err := s.app.Disclosures(ctx)
	if err != nil {
		return nil, s.problem(err)
	}
	out := &disclosuresOutput{}
	out.Body.Disclosures = ds
	return out, nil
}

type erasePersonInput struct {
	Body struct {
		PersonID string `json:"person_id" minLength:"1" maxLength:"20" doc:"The IIN or PIN of the person to erase."`
		Reason   string `json:"reason" minLength:"1" maxLength:"4000" doc:"On whose request and why: the move that ends each open referral gives it (sealed to the other party), and it is erased with the rest."`
	}
}

type erasePersonOutput struct {
	Body app.Erasure
}

func (s *handlers) erasePerson(ctx context.Context, in *erasePersonInput) (*erasePersonOutput, error) {
	e, err := s.app.ErasePerson(ctx, in.Body.PersonID, in.Body.Reason)
	if err != nil {
		return nil, s.problem(err)
	}
	return &erasePersonOutput{Body: e}, nil
}

type directoryOutput struct {
	Body struct {
		Nodes []directory.Listing `json:"nodes" doc:"Every node's listing: the organizations it hosts and their services."`
	}
}

func (s *handlers) getDirectory(ctx context.Context, _ *struct{}) (*directoryOutput, error) {
	ls, err := s.app.Directory(ctx)
	if err != nil {
		return nil, s.problem(err)
	}
	out := &directoryOutput{}
	out.Body.Nodes = ls
	return out, nil
}

// category is a data category a consent may cover: the contract's list.
type category string

// Schema lists the categories of the contract (schemas.Categories).
func (category) Schema(huma.Registry) *huma.Schema {
	s := &huma.Schema{Type: huma.TypeString}
	for _, c := range schemas.Categories() {
		s.Enum = append(s.Enum, c)
	}
	return s
}

// reasonCode is why a referral is declined: the state machine's codes.
type reasonCode string

// Schema lists the decline reason codes (referral.ReasonCodes).
func (reasonCode) Schema(huma.Registry) *huma.Schema {
	s := &huma.Schema{Type: huma.TypeString}
	for _, c := range referral.ReasonCodes() {
		s.Enum = append(s.Enum, string(c))
	}
	return s
}
