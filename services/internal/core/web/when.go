package web

import (
	"fmt"
	"html/template"
	"time"
)

// When is a moment as a page shows it: in the network's time zone and the
// language's format, inside a <time> that gives it to machines exactly
// (RFC 3339, with the zone's offset).
func (t T) When(at time.Time) template.HTML {
	at = at.In(t.loc)
	return template.HTML(`<time datetime="` + at.Format(time.RFC3339) + `">` +
		template.HTMLEscapeString(at.Format(t.cat["fmt.datetime"])) + `</time>`)
}

// Day is a day of a work record (yyyy-mm-dd, as the schemas have it) in
// the language's format, inside a <time>; anything else shows as it is.
func (t T) Day(s string) template.HTML {
	d, err := time.Parse(time.DateOnly, s)
	if err != nil {
		return template.HTML(template.HTMLEscapeString(s))
	}
	return template.HTML(`<time datetime="` + s + `">` + template.HTMLEscapeString(d.Format(t.cat["fmt.date"])) + `</time>`)
}

// MsgHTML is Msg for arguments that are HTML already (When, Day): they go
// in as they are, the message and every other argument escaped.
func (t T) MsgHTML(key string, args ...any) template.HTML {
	m, ok := t.cat[key]
	if !ok {
		m = key
	}
	out := make([]any, len(args))
	for i, a := range args {
		if h, ok := a.(template.HTML); ok {
			out[i] = string(h)
		} else {
			out[i] = template.HTMLEscapeString(fmt.Sprint(a))
		}
	}
	return template.HTML(fmt.Sprintf(template.HTMLEscapeString(m), out...))
}

// Zone says which time zone the page's times are in, once per page: its
// name and its offset now ("Asia/Almaty (UTC+5)").
func (t T) Zone() string {
	_, off := time.Now().In(t.loc).Zone()
	sign := "+"
	if off < 0 {
		sign, off = "-", -off
	}
	utc := fmt.Sprintf("UTC%s%d", sign, off/3600)
	if m := off % 3600 / 60; m != 0 {
		utc += fmt.Sprintf(":%02d", m)
	}
	return t.Msg("time.zone", t.loc.String(), utc)
}
