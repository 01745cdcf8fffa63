package web

import (
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/google/uuid"

	"github.com/refbus/refbus/services/internal/core/app"
)

// The case access log page: who opened which case, and when, for the
// auditors and supervisors (mayDo keeps caseworkers off it). The rows are
// written where a case is shown: the referral page here, the API's reads
// of a referral or a case (app.LogCaseAccess).

type accessRow struct {
	app.CaseAccess
	OrgLabel string
}

type accessData struct {
	Case, User string
	Rows       []accessRow
	// Older is the link to the next page, if there is one.
	Older string
}

func (u *UI) accessLogPage(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	d := accessData{Case: strings.TrimSpace(q.Get("case")), User: strings.TrimSpace(q.Get("user"))}
	f := app.AccessFilter{Username: d.User, Limit: pageSize + 1}
	if d.Case != "" {
		id, err := uuid.Parse(d.Case)
		if err != nil {
			u.render(w, r, http.StatusUnprocessableEntity, "access", "access", d, "access.err_case")
			return
		}
		f.CaseID = id
	}
	if at, id, ok := strings.Cut(q.Get("before"), "_"); ok {
		t, err1 := time.Parse(time.RFC3339Nano, at)
		n, err2 := strconv.ParseInt(id, 10, 64)
		if err1 == nil && err2 == nil {
			f.BeforeAt, f.BeforeID = &t, n
		}
	}
	rows, err := u.app.AccessLog(r.Context(), f)
	if err != nil {
		u.fail(w, r, err)
		return
	}
	if len(rows) > pageSize {
		last := rows[pageSize-1]
		v := url.Values{"before": {last.At.Format(time.RFC3339Nano) + "_" + strconv.FormatInt(last.ID, 10)}}
		if d.Case != "" {
			v.Set("case", d.Case)
		}
		if d.User != "" {
			v.Set("user", d.User)
		}
		d.Older = "/ui/access-log?" + v.Encode()
		rows = rows[:pageSize]
	}
	t := u.tr(r)
	for _, a := range rows {
		row := accessRow{CaseAccess: a}
		if a.Org != "" {
			row.OrgLabel = u.orgLabel(t, a.Org)
		}
		d.Rows = append(d.Rows, row)
	}
	u.render(w, r, http.StatusOK, "access", "access", d, "")
}
