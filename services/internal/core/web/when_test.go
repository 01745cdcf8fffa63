package web_test

import (
	"context"
	"html"
	"net/http"
	"net/url"
	"testing"
	"time"

	"github.com/refbus/refbus/pkg/referral"
	"github.com/refbus/refbus/services/internal/core/app"
	"github.com/refbus/refbus/services/internal/core/web"
)

// TestTimesInNetworkZone: every time a page shows is in the network's
// zone, in a <time> with its exact moment and offset, and the page says
// which zone that is. (Days of work records: TestBrowserAccessibility.)
func TestTimesInNetworkZone(t *testing.T) {
	t.Parallel()
	bishkek, err := time.LoadLocation("Asia/Bishkek")
	if err != nil {
		t.Fatal(err)
	}
	n := newNetwork(t, func(_, _ string, c *web.Config) { c.Location = bishkek }, "social", "ngo")
	r := n.refer("social", "ngo", "crisis_shelter", "Mother and two children.")
	if _, err := n.App("ngo").Move(context.Background(), r.ID, referral.Accept, app.MoveInput{}); err != nil {
		t.Fatal(err)
	}
	c := n.signIn("ngo", "ngo-caseworker")
	res, _ := c.form("/ui/lang", url.Values{"lang": {"en"}, "back": {"/ui/inbox"}})
	wantStatus(t, res, http.StatusSeeOther)
	created := r.CreatedAt.In(bishkek)
	for _, path := range []string{"/ui/inbox", "/ui/referrals/" + r.ID.String()} {
		res, body := c.get(path)
		wantStatus(t, res, http.StatusOK)
		wantContains(t, html.UnescapeString(body),
			`<time datetime="`+created.Format(time.RFC3339)+`">`+created.Format("2 Jan 2006, 15:04")+`</time>`,
			"Times are in Asia/Bishkek (UTC+6).",
			// The words of the banner shown when live updates stop, in
			// the user's language, for the page's script.
			`<template id="live-lost-text"><p>Live updates stopped — reload the page.`)
	}
	_, body := c.get("/ui/inbox")
	wantContains(t, body, `<a href="/ui/referrals/`+r.ID.String()+`"><time datetime="`)
}
