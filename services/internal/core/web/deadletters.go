package web

import (
	"net/http"
	"strconv"

	"github.com/refbus/refbus/pkg/inbox"
)

// The dead letters page: events the bus stopped redelivering to this node,
// with the reason, and (for supervisors; mayDo keeps caseworkers off the
// page and auditors off the form) a form to re-drive them once the cause
// is fixed.

type deadLettersData struct {
	Letters []inbox.DeadLetter
	// Settled is how many the re-drive just sent settled; Redriven says
	// one was sent.
	Settled  int
	Redriven bool
	ReadOnly bool
}

func (u *UI) deadLettersPage(w http.ResponseWriter, r *http.Request) {
	u.showDeadLetters(w, r, http.StatusOK, "")
}

func (u *UI) showDeadLetters(w http.ResponseWriter, r *http.Request, status int, errKey string, errArgs ...any) {
	p, _ := PrincipalFrom(r.Context())
	d := deadLettersData{ReadOnly: p.Role != RoleSupervisor}
	if u.ops != nil {
		var err error
		if d.Letters, err = u.ops.DeadLetters(r.Context()); err != nil {
			u.fail(w, r, err)
			return
		}
	}
	if s := r.URL.Query().Get("settled"); s != "" && status == http.StatusOK {
		d.Settled, _ = strconv.Atoi(s)
		d.Redriven = true
	}
	u.render(w, r, status, "deadletters", "deadletters", d, errKey, errArgs...)
}

// redrive applies the dead letters again and answers with a redirect that
// says how many settled; one that could not be read makes the page say so
// (the others were still tried).
func (u *UI) redrive(w http.ResponseWriter, r *http.Request) {
	if u.ops == nil {
		u.errorPage(w, r, http.StatusNotFound, "error.not_found")
		return
	}
	n, err := u.ops.Redrive(r.Context())
	if err != nil {
		u.log.Error("redrive dead letters", "settled", n, "err", err)
		u.showDeadLetters(w, r, http.StatusInternalServerError, "deadletters.failed", n)
		return
	}
	http.Redirect(w, r, "/ui/dead-letters?settled="+strconv.Itoa(n), http.StatusSeeOther)
}
