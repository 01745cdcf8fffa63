package web

import (
	"embed"
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"time"

	"golang.org/x/text/language"
)

//go:embed messages/*.json
var messageFiles embed.FS

// Left says how long is left until a deadline d from now, in words
// ("1 h 40 min"); a passed one says how long ago.
func (t T) Left(d time.Duration) string {
	key := "left.in"
	if d < 0 {
		key, d = "left.ago", -d
	}
	d = d.Round(time.Minute)
	days, hours, mins := int(d/(24*time.Hour)), int(d%(24*time.Hour)/time.Hour), int(d%time.Hour/time.Minute)
	var s string
	switch {
	case days > 0:
		s = t.Msg("left.dh", days, hours)
	case hours > 0:
		s = t.Msg("left.hm", hours, mins)
	default:
		s = t.Msg("left.m", mins)
	}
	return t.Msg(key, s)
}

// Today is the date today where the UI's users are, as date inputs
// write it; months later, that many months on: the limits the forms show
// before anything is sent.
func (t T) Today(months ...int) string {
	d := time.Now().In(t.loc)
	if len(months) > 0 {
		d = d.AddDate(0, months[0], 0)
	}
	return d.Format(time.DateOnly)
}

// Langs are the languages of the UI, in the order the switcher offers them.
// Russian comes first: it is the default.
var Langs = []string{"ru", "kk", "ky", "en"}

// langNames are the languages' own names, shown in the switcher whatever
// language the page is in.
var langNames = map[string]string{"ru": "Русский", "kk": "Қазақша", "ky": "Кыргызча", "en": "English"}

// catalogue is one language's messages, by key.
type catalogue map[string]string

// loadCatalogues reads the message catalogues embedded in the binary.
func loadCatalogues() (map[string]catalogue, error) {
	out := map[string]catalogue{}
	for _, l := range Langs {
		b, err := messageFiles.ReadFile("messages/" + l + ".json")
		if err != nil {
			return nil, fmt.Errorf("message catalogue %s: %w", l, err)
		}
		var c catalogue
		if err := json.Unmarshal(b, &c); err != nil {
			return nil, fmt.Errorf("message catalogue %s: %w", l, err)
		}
		out[l] = c
	}
	return out, nil
}

// T translates for one page: the language of the signed-in user, or of the
// browser before sign-in.
type T struct {
	lang string
	cat  catalogue
	loc  *time.Location
}

// Msg returns the message key, formatted with args. A key missing from the
// catalogue shows as itself, so the gap is visible (and the catalogue test
// fails before that can ship).
func (t T) Msg(key string, args ...any) string {
	m, ok := t.cat[key]
	if !ok {
		return key
	}
	if len(args) > 0 {
		return fmt.Sprintf(m, args...)
	}
	return m
}

// Maybe returns the message prefix+key if the catalogue has it, and key
// itself otherwise: the services and nodes of a network are data, and a
// name the catalogue does not know shows as itself.
func (t T) Maybe(prefix, key string) string {
	if m, ok := t.cat[prefix+key]; ok {
		return m
	}
	return strings.ReplaceAll(key, "_", " ")
}

// Time formats a moment in the local time and the language's format.
func (t T) Time(at time.Time) string { return at.In(t.loc).Format(t.cat["fmt.datetime"]) }

// Date formats a day in the language's format.
func (t T) Date(at time.Time) string { return at.In(t.loc).Format(t.cat["fmt.date"]) }

// Lang is the language's code, for <html lang>.
func (t T) Lang() string { return t.lang }

var langMatcher = language.NewMatcher([]language.Tag{language.Russian, language.Kazakh, language.Kirghiz, language.English})

// browserLang picks the language for a page before sign-in, from the
// browser's Accept-Language; def when it asks for none of the UI's.
func browserLang(r *http.Request, def string) string {
	if c, err := r.Cookie(langCookie); err == nil && slices.Contains(Langs, c.Value) {
		return c.Value
	}
	tags, _, err := language.ParseAcceptLanguage(r.Header.Get("Accept-Language"))
	if err != nil || len(tags) == 0 {
		return def
	}
	_, i, conf := langMatcher.Match(tags...)
	if conf == language.No {
		return def
	}
	return []string{"ru", "kk", "ky", "en"}[i]
}
