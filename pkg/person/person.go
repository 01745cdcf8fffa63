// Package person validates the national ids of Kazakhstan (IIN) and
// Kyrgyzstan (PIN) and turns them into pseudonymous person keys.
//
// A national id never leaves the agency that knows it: agencies match people
// by Key, a keyed hash of the id under a secret they share. ID masks its number
// whenever it is printed or logged, so an id that slips into a log line or an
// error message does not leak.
package person

import (
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"
	"unicode"
)

// Country is the ISO 3166-1 alpha-2 code of the country that issued an id.
type Country string

// The countries whose ids this package knows.
const (
	KZ Country = "KZ" // Kazakhstan: 12-digit IIN
	KG Country = "KG" // Kyrgyzstan: 14-digit PIN
)

const (
	iinLen = 12
	pinLen = 14
)

// Sentinel errors. Parse and ParseAny return them wrapped in a *ParseError,
// whose message a caseworker can act on; test for them with errors.Is.
var (
	ErrWrongLength    = errors.New("wrong number of digits")
	ErrNotDigits      = errors.New("not all digits")
	ErrCheckDigit     = errors.New("wrong check digit")
	ErrBadDate        = errors.New("not a real birth date")
	ErrBadSexDigit    = errors.New("bad sex digit")
	ErrUnknownCountry = errors.New("unknown country")
)

// ParseError is the error Parse and ParseAny return. Its message never holds
// the number, so it is safe to log; its fields let a user interface choose a
// translated message from a catalogue instead of showing the English one.
type ParseError struct {
	Country  Country // KZ or KG; empty when ParseAny could not tell which
	Err      error   // one of the sentinels: ErrWrongLength, ErrNotDigits, ...
	Position int     // 1-based position of the offending character, or 0
	Got      int     // for ErrWrongLength: the number of characters found
	msg      string
}

// Error returns a message a caseworker can act on, such as
// "IIN must have 12 digits, got 11".
func (e *ParseError) Error() string { return e.msg }

// Unwrap returns the sentinel, so that errors.Is(err, ErrCheckDigit) works.
func (e *ParseError) Unwrap() error { return e.Err }

// ID is a validated national id. Number holds the digits only.
//
// Never log or print Number: ID implements fmt.Formatter, fmt.Stringer,
// fmt.GoStringer and slog.LogValuer so that every fmt verb and every slog
// handler shows a masked form such as "KZ IIN ********0123".
type ID struct {
	Country Country
	Number  string
}

// Parse validates s as a national id of country, after trimming surrounding
// white space. The error is a *ParseError wrapping ErrWrongLength,
// ErrNotDigits, ErrCheckDigit, ErrBadDate, ErrBadSexDigit or
// ErrUnknownCountry.
//
// Parse does not reject birth dates in the future: that would make the same
// number valid or not depending on the clock, and the bus replays years of
// history.
func Parse(country Country, s string) (ID, error) {
	s = strings.TrimSpace(s)
	var want int
	switch country {
	case KZ:
		want = iinLen
	case KG:
		want = pinLen
	default:
		return ID{}, &ParseError{Err: ErrUnknownCountry,
			msg: fmt.Sprintf("unknown country %q: want KZ or KG", string(country))}
	}
	name := scheme(country)
	if err := checkDigits(country, name, s); err != nil {
		return ID{}, err
	}
	if len(s) != want {
		return ID{}, &ParseError{Country: country, Err: ErrWrongLength, Got: len(s),
			msg: fmt.Sprintf("%s must have %d digits, got %d", name, want, len(s))}
	}
	var err error
	if country == KZ {
		err = checkIIN(s)
	} else {
		err = checkPIN(s)
	}
	if err != nil {
		return ID{}, err
	}
	return ID{Country: country, Number: s}, nil
}

// ParseAny validates s as whichever id its length implies: 12 digits as a
// Kazakhstan IIN, 14 digits as a Kyrgyzstan PIN. It is for input that does
// not say its country; prefer Parse when the country is known.
func ParseAny(s string) (ID, error) {
	s = strings.TrimSpace(s)
	if err := checkDigits("", "national id", s); err != nil {
		return ID{}, err
	}
	switch len(s) {
	case iinLen:
		return Parse(KZ, s)
	case pinLen:
		return Parse(KG, s)
	}
	return ID{}, &ParseError{Err: ErrWrongLength, Got: len(s),
		msg: fmt.Sprintf("national id must have %d digits (Kazakhstan IIN) or %d digits (Kyrgyzstan PIN), got %d",
			iinLen, pinLen, len(s))}
}

// checkDigits reports the first character of s that is not an ASCII digit.
// unicode.IsDigit is not enough: it accepts other scripts' digits, which no
// registry issues and which would give the same person a second key.
func checkDigits(country Country, name, s string) error {
	pos := 0
	for _, r := range s {
		pos++
		if r >= '0' && r <= '9' {
			continue
		}
		what := "a character that is not a digit"
		switch {
		case unicode.IsLetter(r):
			what = "a letter"
		case unicode.IsSpace(r):
			what = "a space"
		case unicode.IsDigit(r):
			what = "a digit that is not 0-9"
		}
		return &ParseError{Country: country, Err: ErrNotDigits, Position: pos,
			msg: fmt.Sprintf("%s contains %s at position %d", name, what, pos)}
	}
	return nil
}

// checkIIN checks a 12-digit IIN: YYMMDD, a century-and-sex digit, a
// four-digit serial and a check digit.
func checkIIN(s string) error {
	// Digit 7: 1-2 born in the 1800s, 3-4 in the 1900s, 5-6 in the 2000s;
	// odd for men, even for women.
	c := int(s[6] - '0')
	if c < 1 || c > 6 {
		return &ParseError{Country: KZ, Err: ErrBadDate, Position: 7,
			msg: fmt.Sprintf("IIN digit 7 must be 1-6 (century of birth and sex), got %d: please re-check the number", c)}
	}
	year := 1800 + 100*((c-1)/2) + num(s[0:2])
	if !realDate(year, num(s[2:4]), num(s[4:6])) {
		return &ParseError{Country: KZ, Err: ErrBadDate, Position: 1,
			msg: "IIN digits 1-6 are not a real birth date (YYMMDD): please re-check the number"}
	}
	if d, ok := iinCheckDigit(s); !ok || d != int(s[11]-'0') {
		return &ParseError{Country: KZ, Err: ErrCheckDigit, Position: 12,
			msg: "IIN check digit is wrong: please re-check the number"}
	}
	return nil
}

// iinCheckDigit computes the check digit of the first 11 digits of s. It
// reports false when both passes give 10: no IIN is issued with those 11
// digits.
func iinCheckDigit(s string) (int, bool) {
	sum := 0
	for i := range 11 {
		sum += int(s[i]-'0') * (i + 1)
	}
	if r := sum % 11; r != 10 {
		return r, true
	}
	sum = 0
	for i := range 11 {
		sum += int(s[i]-'0') * ((i+2)%11 + 1) // 3, 4, ..., 11, 1, 2
	}
	if r := sum % 11; r != 10 {
		return r, true
	}
	return 0, false
}

// checkPIN checks a 14-digit PIN: a sex digit, DDMMYYYY and five more digits.
// A PIN carries no check digit, so a typo outside the date goes unnoticed.
func checkPIN(s string) error {
	if s[0] != '1' && s[0] != '2' {
		return &ParseError{Country: KG, Err: ErrBadSexDigit, Position: 1,
			msg: fmt.Sprintf("PIN must start with 1 or 2 (sex), got %c: please re-check the number", s[0])}
	}
	year := num(s[5:9])
	// No one born before 1900 holds a PIN; an earlier year is a typo.
	if year < 1900 || !realDate(year, num(s[3:5]), num(s[1:3])) {
		return &ParseError{Country: KG, Err: ErrBadDate, Position: 2,
			msg: "PIN digits 2-9 are not a real birth date (DDMMYYYY): please re-check the number"}
	}
	return nil
}

// num converts a short string of ASCII digits to an int.
func num(s string) int {
	n := 0
	for i := range len(s) {
		n = n*10 + int(s[i]-'0')
	}
	return n
}

// realDate reports whether year-month-day exists in the Gregorian calendar.
func realDate(year, month, day int) bool {
	if month < 1 || month > 12 || day < 1 {
		return false
	}
	// time.Date normalises 31 February to 3 March; a changed day means the
	// date does not exist.
	return time.Date(year, time.Month(month), day, 0, 0, 0, 0, time.UTC).Day() == day
}

// scheme names the id a country issues, as caseworkers know it.
func scheme(c Country) string {
	switch c {
	case KZ:
		return "IIN"
	case KG:
		return "PIN"
	}
	return "id"
}

// String returns the id with all but its last four digits masked, such as
// "KZ IIN ********0123".
func (id ID) String() string {
	if id.Country == "" && id.Number == "" {
		return "no id"
	}
	return string(id.Country) + " " + scheme(id.Country) + " " + mask(id.Number)
}

// GoString returns the masked id for %#v.
func (id ID) GoString() string {
	return fmt.Sprintf("person.ID{Country:%q, Number:%q}", string(id.Country), mask(id.Number))
}

// Format prints the masked id for every verb. Without it, verbs that
// fmt.Stringer does not cover, such as %d, would print the fields raw.
func (id ID) Format(f fmt.State, verb rune) {
	switch verb {
	case 'v':
		if f.Flag('#') {
			fmt.Fprint(f, id.GoString())
			return
		}
	case 'q':
		fmt.Fprintf(f, fmt.FormatString(f, 'q'), id.String())
		return
	}
	fmt.Fprintf(f, fmt.FormatString(f, 's'), id.String())
}

// LogValue returns the masked id, so slog never records the number.
func (id ID) LogValue() slog.Value {
	return slog.StringValue(id.String())
}

// mask hides all but the last four characters of n, and all of them when n is
// too short for four hidden ones to leave it unguessable.
func mask(n string) string {
	r := []rune(n)
	show := 4
	if len(r) < 8 {
		show = 0
	}
	return strings.Repeat("*", len(r)-show) + string(r[len(r)-show:])
}
