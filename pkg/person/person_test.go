package person_test

import (
	"bytes"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"testing"

	"github.com/refbus/refbus/pkg/person"
)

// Valid IINs, each checked by hand. p1 is the first pass (weights 1..11), p2
// the second (weights 3..11, 1, 2), both mod 11.
var validIINs = []struct {
	iin  string
	pass int // the pass that yields the check digit
	note string
}{
	// 8+16+0+4+0+6+21+0+0+10+22 = 87, p1 = 10;
	// 24+32+0+6+0+8+27+0+0+1+4 = 102, p2 = 3.
	{"880101300123", 2, "man born 1988-01-01"},
	// 9+10+0+28+5+30+28+0+9+20+33 = 172, p1 = 7.
	{"950715401237", 1, "woman born 1995-07-15"},
	// 0+8+0+8+10+54+35+0+0+0+11 = 126, p1 = 5; 2004 is a leap year.
	{"040229500015", 1, "man born 2004-02-29"},
	// 0+0+0+8+10+54+35+0+0+0+11 = 118, p1 = 8; 2000 is a leap year.
	{"000229500018", 1, "man born 2000-02-29"},
	// 9+18+0+4+0+6+28+0+0+0+0 = 65, p1 = 10;
	// 27+36+0+6+0+8+36+0+0+0+0 = 113, p2 = 3.
	{"990101400003", 2, "woman born 1999-01-01"},
	// 9+18+3+8+15+6+7+0+0+0+0 = 66, p1 = 0.
	{"991231100000", 1, "man born 1899-12-31"},
	// 0+0+0+4+0+6+42+0+0+0+0 = 52, p1 = 8; 2000-01-01 woman.
	{"000101600008", 1, "woman born 2000-01-01"},
}

// iinCheck is the check-digit rule written out again, independently of the
// package, with the weights spelled out.
func iinCheck(t *testing.T, s string) (digit, pass int, ok bool) {
	t.Helper()
	w1 := []int{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11}
	w2 := []int{3, 4, 5, 6, 7, 8, 9, 10, 11, 1, 2}
	for pass, w := range [][]int{w1, w2} {
		sum := 0
		for i, c := range s[:11] {
			sum += int(c-'0') * w[i]
		}
		if sum%11 != 10 {
			return sum % 11, pass + 1, true
		}
	}
	return 0, 2, false
}

func TestParseValidIIN(t *testing.T) {
	t.Parallel()
	for _, tc := range validIINs {
		t.Run(tc.note, func(t *testing.T) {
			t.Parallel()
			digit, pass, ok := iinCheck(t, tc.iin)
			if !ok || pass != tc.pass || digit != int(tc.iin[11]-'0') {
				t.Fatalf("test data: check digit %d in pass %d (ok %v), want %c in pass %d",
					digit, pass, ok, tc.iin[11], tc.pass)
			}
			for _, in := range []string{tc.iin, "  " + tc.iin + "\t\n"} {
				id, err := person.Parse(person.KZ, in)
				if err != nil {
					t.Fatalf("Parse(KZ, %q): %v", in, err)
				}
				if want := (person.ID{Country: person.KZ, Number: tc.iin}); id != want {
					t.Fatalf("Parse(KZ, %q) = %#v, want %#v", in, id, want)
				}
				viaAny, err := person.ParseAny(in)
				if err != nil || viaAny != id {
					t.Fatalf("ParseAny(%q) = %v, %v; want %v", in, viaAny, err, id)
				}
			}
		})
	}
}

func TestParseValidPIN(t *testing.T) {
	t.Parallel()
	for _, pin := range []string{
		"21507199500123", // man born 1995-07-15
		"12902200000001", // woman born 2000-02-29
		"10101190099999", // woman born 1900-01-01
		"23112202412345", // man born 2024-12-31
	} {
		t.Run(pin, func(t *testing.T) {
			t.Parallel()
			id, err := person.Parse(person.KG, " "+pin+" ")
			if err != nil {
				t.Fatalf("Parse(KG, %q): %v", pin, err)
			}
			if want := (person.ID{Country: person.KG, Number: pin}); id != want {
				t.Fatalf("Parse(KG, %q) = %#v, want %#v", pin, id, want)
			}
			if viaAny, err := person.ParseAny(pin); err != nil || viaAny != id {
				t.Fatalf("ParseAny(%q) = %v, %v; want %v", pin, viaAny, err, id)
			}
		})
	}
}

func TestParseInvalid(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name     string
		country  person.Country
		in       string
		want     error
		position int
		msg      string
	}{
		{"short IIN", person.KZ, "88010130012", person.ErrWrongLength, 0,
			"IIN must have 12 digits, got 11"},
		{"long IIN", person.KZ, "8801013001234", person.ErrWrongLength, 0,
			"IIN must have 12 digits, got 13"},
		{"empty IIN", person.KZ, "   ", person.ErrWrongLength, 0,
			"IIN must have 12 digits, got 0"},
		{"IIN as PIN", person.KG, "880101300123", person.ErrWrongLength, 0,
			"PIN must have 14 digits, got 12"},
		{"letter O for zero", person.KZ, "8801O1300123", person.ErrNotDigits, 5,
			"IIN contains a letter at position 5"},
		{"inner space", person.KZ, "880101 300123", person.ErrNotDigits, 7,
			"IIN contains a space at position 7"},
		{"dash", person.KG, "2-1507199500123", person.ErrNotDigits, 2,
			"PIN contains a character that is not a digit at position 2"},
		{"Arabic-Indic digit", person.KZ, "88010130012٣", person.ErrNotDigits, 12,
			"IIN contains a digit that is not 0-9 at position 12"},
		{"Cyrillic letters", person.KZ, "жж0101300123", person.ErrNotDigits, 1,
			"IIN contains a letter at position 1"},
		{"wrong check digit", person.KZ, "880101300124", person.ErrCheckDigit, 12,
			"IIN check digit is wrong: please re-check the number"},
		{"swapped digits", person.KZ, "950715402137", person.ErrCheckDigit, 12,
			"IIN check digit is wrong: please re-check the number"},
		// The following have a check digit that passes, so only the date is wrong.
		// 0+10+0+8+10+54+35+0+0+0+11 = 128, p1 = 7; 2005 is not a leap year.
		{"29 February 2005", person.KZ, "050229500017", person.ErrBadDate, 1,
			"IIN digits 1-6 are not a real birth date (YYMMDD): please re-check the number"},
		// 0+0+0+8+10+54+21+0+0+0+11 = 104, p1 = 5; 1900 is not a leap year.
		{"29 February 1900", person.KZ, "000229300015", person.ErrBadDate, 1,
			"IIN digits 1-6 are not a real birth date (YYMMDD): please re-check the number"},
		// 8+16+3+12+0+6+21+0+0+0+11 = 77, p1 = 0.
		{"month 13", person.KZ, "881301300010", person.ErrBadDate, 1,
			"IIN digits 1-6 are not a real birth date (YYMMDD): please re-check the number"},
		// 8+16+0+4+0+0+21+0+0+0+11 = 60, p1 = 5.
		{"day 0", person.KZ, "880100300015", person.ErrBadDate, 1,
			"IIN digits 1-6 are not a real birth date (YYMMDD): please re-check the number"},
		// 8+16+0+4+0+6+0+0+0+0+11 = 45, p1 = 1.
		{"century digit 0", person.KZ, "880101000011", person.ErrBadDate, 7,
			"IIN digit 7 must be 1-6 (century of birth and sex), got 0: please re-check the number"},
		// 8+16+0+4+0+6+49+0+0+0+11 = 94, p1 = 6.
		{"century digit 7", person.KZ, "880101700016", person.ErrBadDate, 7,
			"IIN digit 7 must be 1-6 (century of birth and sex), got 7: please re-check the number"},
		{"PIN sex digit 3", person.KG, "31507199500123", person.ErrBadSexDigit, 1,
			"PIN must start with 1 or 2 (sex), got 3: please re-check the number"},
		{"PIN sex digit 0", person.KG, "01507199500123", person.ErrBadSexDigit, 1,
			"PIN must start with 1 or 2 (sex), got 0: please re-check the number"},
		{"PIN 31 February", person.KG, "23102199500123", person.ErrBadDate, 2,
			"PIN digits 2-9 are not a real birth date (DDMMYYYY): please re-check the number"},
		{"PIN 29 February 2023", person.KG, "12902202300123", person.ErrBadDate, 2,
			"PIN digits 2-9 are not a real birth date (DDMMYYYY): please re-check the number"},
		{"PIN month 0", person.KG, "21500199500123", person.ErrBadDate, 2,
			"PIN digits 2-9 are not a real birth date (DDMMYYYY): please re-check the number"},
		{"PIN year 1899", person.KG, "20101189900123", person.ErrBadDate, 2,
			"PIN digits 2-9 are not a real birth date (DDMMYYYY): please re-check the number"},
		{"unknown country", "UZ", "880101300123", person.ErrUnknownCountry, 0,
			`unknown country "UZ": want KZ or KG`},
		{"lower-case country", "kz", "880101300123", person.ErrUnknownCountry, 0,
			`unknown country "kz": want KZ or KG`},
		{"no country", "", "880101300123", person.ErrUnknownCountry, 0,
			`unknown country "": want KZ or KG`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			id, err := person.Parse(tc.country, tc.in)
			if !errors.Is(err, tc.want) {
				t.Fatalf("Parse(%q, %q) = %v, %v; want %v", tc.country, tc.in, id, err, tc.want)
			}
			if id != (person.ID{}) {
				t.Errorf("Parse returned %#v with an error, want the zero ID", id)
			}
			if err.Error() != tc.msg {
				t.Errorf("message %q, want %q", err.Error(), tc.msg)
			}
			var pe *person.ParseError
			if !errors.As(err, &pe) {
				t.Fatalf("error %T is not a *person.ParseError", err)
			}
			if pe.Position != tc.position {
				t.Errorf("Position = %d, want %d", pe.Position, tc.position)
			}
			if tc.want != person.ErrUnknownCountry && pe.Country != tc.country {
				t.Errorf("Country = %q, want %q", pe.Country, tc.country)
			}
			if len(tc.in) >= 8 && strings.Contains(err.Error(), strings.TrimSpace(tc.in)[:8]) {
				t.Errorf("message %q repeats the number", err.Error())
			}
		})
	}
}

// TestParseSecondPassTen covers the 11 digits for which both passes give 10:
// no check digit makes them a valid IIN.
func TestParseSecondPassTen(t *testing.T) {
	t.Parallel()
	// 8+16+0+4+0+6+21+0+0+10+0 = 65, p1 = 10;
	// 24+32+0+6+0+8+27+0+0+1+0 = 98, p2 = 10.
	const first11 = "88010130010"
	if _, _, ok := iinCheck(t, first11); ok {
		t.Fatal("test data: first11 has a check digit")
	}
	for d := '0'; d <= '9'; d++ {
		in := first11 + string(d)
		if _, err := person.Parse(person.KZ, in); !errors.Is(err, person.ErrCheckDigit) {
			t.Errorf("Parse(KZ, %q) error = %v, want ErrCheckDigit", in, err)
		}
	}
}

func TestParseAnyInvalid(t *testing.T) {
	t.Parallel()
	tests := []struct {
		in   string
		want error
		msg  string
	}{
		{"8801013001", person.ErrWrongLength,
			"national id must have 12 digits (Kazakhstan IIN) or 14 digits (Kyrgyzstan PIN), got 10"},
		{"8801013001234", person.ErrWrongLength,
			"national id must have 12 digits (Kazakhstan IIN) or 14 digits (Kyrgyzstan PIN), got 13"},
		{"", person.ErrWrongLength,
			"national id must have 12 digits (Kazakhstan IIN) or 14 digits (Kyrgyzstan PIN), got 0"},
		{"88010130012x", person.ErrNotDigits, "national id contains a letter at position 12"},
		{"880101300124", person.ErrCheckDigit, "IIN check digit is wrong: please re-check the number"},
		{"31507199500123", person.ErrBadSexDigit, "PIN must start with 1 or 2 (sex), got 3: please re-check the number"},
	}
	for _, tc := range tests {
		t.Run(tc.in, func(t *testing.T) {
			t.Parallel()
			_, err := person.ParseAny(tc.in)
			if !errors.Is(err, tc.want) {
				t.Fatalf("ParseAny(%q) error = %v, want %v", tc.in, err, tc.want)
			}
			if err.Error() != tc.msg {
				t.Errorf("message %q, want %q", err.Error(), tc.msg)
			}
		})
	}
}

func TestIDNeverShowsNumber(t *testing.T) {
	t.Parallel()
	kz := person.ID{Country: person.KZ, Number: "880101300123"}
	kg := person.ID{Country: person.KG, Number: "21507199500123"}
	tests := []struct {
		id   person.ID
		want string
	}{
		{kz, "KZ IIN ********0123"},
		{kg, "KG PIN **********0123"},
		{person.ID{}, "no id"},
		{person.ID{Country: person.KZ, Number: "123"}, "KZ IIN ***"},
	}
	for _, tc := range tests {
		if got := tc.id.String(); got != tc.want {
			t.Errorf("String() = %q, want %q", got, tc.want)
		}
	}

	for _, id := range []person.ID{kz, kg} {
		// Only the masked tail may appear; the leading digits carry the
		// birth date and must never.
		secret := id.Number[:len(id.Number)-4]
		var out []string
		for _, verb := range []string{"%v", "%+v", "%#v", "%s", "%q", "%d", "%x", "%X", "%20s", "%-8v", "%T %v"} {
			out = append(out, fmt.Sprintf(verb, id))
		}
		out = append(out,
			fmt.Sprint(id), fmt.Sprintln(id), fmt.Sprint(&id),
			fmt.Sprintf("%v", struct{ ID person.ID }{id}),
			fmt.Sprintf("%+v", []person.ID{id}),
			fmt.Sprintf("%v", map[string]person.ID{"a": id}),
		)
		var text, js bytes.Buffer
		slog.New(slog.NewTextHandler(&text, nil)).Info("x", "id", id, "ptr", &id)
		slog.New(slog.NewJSONHandler(&js, nil)).Info("x", "id", id, slog.Group("g", "id", id))
		out = append(out, text.String(), js.String())
		for _, s := range out {
			if strings.Contains(s, secret) {
				t.Errorf("output %q contains the number", s)
			}
		}
		if !strings.Contains(text.String(), id.String()) {
			t.Errorf("slog output %q lacks the masked id %q", text.String(), id.String())
		}
	}
}

func FuzzParse(f *testing.F) {
	for _, tc := range validIINs {
		f.Add(tc.iin)
	}
	for _, s := range []string{
		"", " ", "880101300124", "88010130010", "8801O1300123", "21507199500123",
		"23102199500123", "000229300015", "٣٣٣٣٣٣٣٣٣٣٣٣", "\xff\xfe", " 880101300123 ",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		for _, c := range []person.Country{person.KZ, person.KG, "", "XX"} {
			id, err := person.Parse(c, s)
			if err != nil {
				var pe *person.ParseError
				if !errors.As(err, &pe) || pe.Err == nil {
					t.Fatalf("Parse(%q, %q) error %v is not a *ParseError with a sentinel", c, s, err)
				}
				continue
			}
			checkAccepted(t, c, s, id)
		}
		if id, err := person.ParseAny(s); err == nil {
			checkAccepted(t, id.Country, s, id)
		}
	})
}

// checkAccepted re-validates an id Parse accepted, without the package's help.
func checkAccepted(t *testing.T, c person.Country, s string, id person.ID) {
	t.Helper()
	if id.Country != c || id.Number != strings.TrimSpace(s) {
		t.Fatalf("Parse(%q, %q) = %#v", c, s, id)
	}
	for _, r := range id.Number {
		if r < '0' || r > '9' {
			t.Fatalf("accepted %q with a non-digit", s)
		}
	}
	switch c {
	case person.KZ:
		if len(id.Number) != 12 {
			t.Fatalf("accepted IIN %q of length %d", s, len(id.Number))
		}
		if d, _, ok := iinCheck(t, id.Number); !ok || d != int(id.Number[11]-'0') {
			t.Fatalf("accepted IIN %q with a wrong check digit", s)
		}
		if id.Number[6] < '1' || id.Number[6] > '6' {
			t.Fatalf("accepted IIN %q with digit 7 out of 1-6", s)
		}
		if mm := id.Number[2:4]; mm < "01" || mm > "12" {
			t.Fatalf("accepted IIN %q with month %s", s, mm)
		}
	case person.KG:
		if len(id.Number) != 14 || (id.Number[0] != '1' && id.Number[0] != '2') {
			t.Fatalf("accepted PIN %q", s)
		}
		if mm := id.Number[3:5]; mm < "01" || mm > "12" {
			t.Fatalf("accepted PIN %q with month %s", s, mm)
		}
	default:
		t.Fatalf("accepted %q for country %q", s, c)
	}
	again, err := person.Parse(id.Country, id.Number)
	if err != nil || again != id {
		t.Fatalf("accepted %q, but re-parsing its number gives %v, %v", s, again, err)
	}
	if strings.Contains(fmt.Sprint(id), id.Number[:8]) {
		t.Fatalf("fmt.Sprint(id) = %q shows the number", fmt.Sprint(id))
	}
}
