package scenario_test

import (
	"context"
	"flag"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/refbus/refbus/services/internal/core"
	"github.com/refbus/refbus/services/internal/core/app"
)

// screenshots, if set, is where TestBrowserDomesticViolence saves the main
// pages as PNG, and TestBrowserAccessibility those of a11yPages with a shot
// (make screenshots).
var screenshots = flag.String("screenshots", "", "directory to save screenshots of the main pages in")

// chromium finds the browser; without one the browser tests skip, unless
// they run in CI, where they must run.
func chromium(t *testing.T) string {
	t.Helper()
	for _, p := range []string{os.Getenv("CHROMIUM"), "/usr/bin/chromium", "/usr/bin/chromium-browser"} {
		if p == "" {
			continue
		}
		if _, err := os.Stat(p); err == nil {
			return p
		}
	}
	if p, err := exec.LookPath("chromium"); err == nil {
		return p
	}
	if os.Getenv("CI") != "" {
		t.Fatal("chromium is not installed, and browser tests must run in CI: run `make chromium`")
	}
	t.Skip("chromium is not installed (run `make chromium`, or set CHROMIUM); skipping the browser tests")
	return ""
}

// browser starts a headless Chromium with a fresh profile for the test;
// with a language (ru, kk, ky, en), a browser of that language: it asks
// pages for it (Accept-Language) and shows dates as its people write
// them (a date field's dd.mm.yyyy, not mm/dd/yyyy).
func browser(t *testing.T, lang ...string) context.Context {
	t.Helper()
	// Not t.TempDir: Chromium's helpers may still write to the profile as
	// the test ends, which would fail the test's cleanup.
	profile, err := os.MkdirTemp("", "refbus-chromium-")
	if err != nil {
		t.Fatal(err)
	}
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(chromium(t)),
		chromedp.Flag("headless", true),
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		chromedp.Flag("disable-quic", true),
		chromedp.NoFirstRun,
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.UserDataDir(profile),
		chromedp.WindowSize(1280, 900),
		// Keep one renderer per tab across navigations: chromedp follows a
		// tab's frames, and a renderer swapped on navigation loses it.
		chromedp.Flag("disable-features", "site-per-process,Translate,BlinkGenPropertyTrees,BackForwardCache,RenderDocument,ProactivelySwapBrowsingInstance"),
		chromedp.Flag("disable-site-isolation-trials", true),
	)
	if len(lang) > 0 {
		// Chromium has no Kazakh or Kyrgyz locale of its own: people there
		// write days as Russian does (dd.mm.yyyy), and English as Britain.
		locale := map[string]string{"kk": "ru", "ky": "ru", "en": "en-GB"}[lang[0]]
		if locale == "" {
			locale = lang[0]
		}
		opts = append(opts, chromedp.Flag("lang", locale), chromedp.Env("LANGUAGE="+locale), chromedp.Flag("accept-lang", lang[0]+","+locale))
	}
	if os.Getenv("REFBUS_TRACE_BROWSER") != "" {
		opts = append(opts, chromedp.CombinedOutput(os.Stderr), chromedp.Flag("enable-logging", "stderr"), chromedp.Flag("v", "0"))
	}
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	bctx, cancelBrowser := chromedp.NewContext(actx)
	t.Cleanup(func() { cancelBrowser(); cancelAlloc(); _ = os.RemoveAll(profile) })
	if err := chromedp.Run(bctx); err != nil {
		t.Fatalf("start chromium: %v", err)
	}
	return bctx
}

// tab is one caseworker's browser tab.
type tab struct {
	t    *testing.T
	ctx  context.Context
	base string
}

func newTab(t *testing.T, b context.Context, base string) *tab {
	t.Helper()
	ctx, cancel := chromedp.NewContext(b)
	t.Cleanup(cancel)
	// The first run opens the tab, which lives as long as the context of
	// that run: so that one has no deadline.
	if err := chromedp.Run(ctx); err != nil {
		t.Fatalf("open a tab: %v", err)
	}
	return &tab{t: t, ctx: ctx, base: base}
}

// open loads path.
func (tb *tab) open(path string) {
	tb.t.Helper()
	tb.run("open "+path, chromedp.Navigate(tb.base+path), chromedp.WaitVisible("main", chromedp.ByQuery))
}

// run runs actions, all within a minute.
func (tb *tab) run(what string, actions ...chromedp.Action) {
	tb.t.Helper()
	ctx, cancel := context.WithTimeout(tb.ctx, time.Minute)
	defer cancel()
	if err := chromedp.Run(ctx, actions...); err != nil {
		var html string
		hctx, cancel := context.WithTimeout(tb.ctx, 5*time.Second)
		defer cancel()
		_ = chromedp.Run(hctx, chromedp.OuterHTML("html", &html, chromedp.ByQuery))
		tb.t.Fatalf("%s: %v\npage:\n%s", what, err, trim(html))
	}
}

func (tb *tab) signIn(user string) {
	tb.t.Helper()
	tb.open("/ui/login")
	tb.run("sign in as "+user,
		chromedp.WaitVisible("#username", chromedp.ByQuery),
		chromedp.SendKeys("#username", user, chromedp.ByQuery),
		chromedp.SendKeys("#password", password, chromedp.ByQuery),
		chromedp.Submit("#password", chromedp.ByQuery),
		chromedp.WaitVisible("#live", chromedp.ByQuery),
	)
}

// html returns the page as the browser has it now.
func (tb *tab) html() string {
	tb.t.Helper()
	var s string
	tb.run("read page", chromedp.OuterHTML("html", &s, chromedp.ByQuery))
	return s
}

// a11y fails the test if a control of the page has no label or name, or
// is out of the keyboard's reach (a negative tabindex).
func (tb *tab) a11y() {
	tb.t.Helper()
	var bad []string
	tb.run("check labels", chromedp.Evaluate(`[...document.querySelectorAll("input:not([type=hidden]), select, textarea, button, a[href]")]
		.filter(e => e.tabIndex < 0 || !((e.labels && e.labels.length) || e.getAttribute("aria-label") || e.textContent.trim()))
		.map(e => e.outerHTML.slice(0, 120))`, &bad))
	if len(bad) > 0 {
		tb.t.Fatalf("controls without a label or out of keyboard reach: %v", bad)
	}
	tb.run("check contrast", chromedp.Evaluate(contrastJS, &bad))
	if len(bad) > 0 {
		tb.t.Fatalf("text with less contrast than WCAG AA's 4.5:1: %v", bad)
	}
}

// contrastJS lists the page's visible text whose colour has less than
// 4.5:1 contrast with the background it is drawn on (WCAG 2.1 AA).
const contrastJS = `(() => {
  const rgb = c => c.match(/[\d.]+/g).map(Number);
  const lum = c => { const [r, g, b] = rgb(c).slice(0, 3).map(v => { v /= 255; return v <= 0.03928 ? v / 12.92 : Math.pow((v + 0.055) / 1.055, 2.4); }); return 0.2126 * r + 0.7152 * g + 0.0722 * b; };
  const opaque = c => { const v = rgb(c); return v.length < 4 || v[3] > 0; };
  const bg = e => { for (; e; e = e.parentElement) { const c = getComputedStyle(e).backgroundColor; if (opaque(c)) return c; } return "rgb(255, 255, 255)"; };
  const bad = [];
  for (const e of document.querySelectorAll("body *")) {
    if (![...e.childNodes].some(n => n.nodeType === 3 && n.textContent.trim())) continue;
    const r = e.getBoundingClientRect();
    if (!r.width || !r.height) continue;
    const a = lum(getComputedStyle(e).color), b = lum(bg(e));
    const ratio = (Math.max(a, b) + 0.05) / (Math.min(a, b) + 0.05);
    if (ratio < 4.5) bad.push(e.tagName + " " + ratio.toFixed(2) + " " + e.textContent.trim().slice(0, 40));
  }
  return bad;
})()`

func (tb *tab) shot(name string) {
	tb.t.Helper()
	if *screenshots == "" {
		return
	}
	var png []byte
	tb.run("screenshot "+name, chromedp.FullScreenshot(&png, 100))
	if err := os.WriteFile(filepath.Join(*screenshots, name+".png"), png, 0o644); err != nil {
		tb.t.Fatal(err)
	}
}

// TestBrowserDomesticViolence walks the domestic-violence chain of help in
// a real browser, on the Kazakh demo network, as caseworkers of the school
// (education), a family support centre (social) and the Zhan-Saya crisis
// shelter (ngo): sign in, refer, accept, forward, accept, complete, with
// the live status at the sender. The shelter's address, which the shelter
// sends only to the perinatal centre (health), never appears on a page of
// the school or of the family support centre.
func TestBrowserDomesticViolence(t *testing.T) {
	t.Parallel()
	b := browser(t)
	n := uiNetwork(t, kz, func(c *core.Config) {
		// The shelter must accept at once: the referral is overdue when it
		// arrives, and must stand out.
		c.SLAs = map[string]app.SLA{"crisis_shelter": {Accept: time.Nanosecond}, "": {Accept: time.Hour}}
		c.SLATick = 100 * time.Millisecond
	})
	const (
		schoolNote = "The school noticed bruises on both children; the mother asks for help."
		address    = "Shelter address: 14 Zheltoksan Street, flat 3"
	)
	school, social, shelter := newTab(t, b, n.Node("education").HTTP.URL), newTab(t, b, n.Node("social").HTTP.URL), newTab(t, b, n.Node("ngo").HTTP.URL)

	// Social protection's caseworker has the inbox open before anything
	// comes.
	social.signIn("kz-almaty-fsc-almaly-caseworker")
	social.a11y()

	// The school refers the family.
	school.signIn("kz-almaty-school-12-caseworker")
	school.open("/ui/new")
	school.run("refer to social",
		chromedp.WaitVisible("#note", chromedp.ByQuery),
		chromedp.SetValue("#offer", "kz-almaty-fsc-almaly/family_support", chromedp.ByQuery),
		chromedp.SendKeys("#note", schoolNote, chromedp.ByQuery),
		consent("new", "the mother"),
		chromedp.Submit("#note", chromedp.ByQuery),
		chromedp.WaitVisible(`#status`, chromedp.ByQuery),
	)
	school.a11y()
	school.shot("referral-new")

	// It appears in social's inbox without a reload, and social accepts
	// and forwards it to the shelter.
	social.run("the referral appears live, and social accepts it",
		chromedp.WaitVisible(`tr[data-referral] a`, chromedp.ByQuery),
		chromedp.Click(`tr[data-referral] a`, chromedp.ByQuery),
		chromedp.WaitVisible("#do-accept", chromedp.ByQuery),
		chromedp.Click("#do-accept", chromedp.ByQuery),
		chromedp.WaitVisible(`#status[data-status="accepted"]`, chromedp.ByQuery),
	)
	social.run("social forwards it to the shelter",
		chromedp.SetValue("#forward-offer", "kz-zhan-saya/crisis_shelter", chromedp.ByQuery),
		chromedp.SendKeys("#forward-note", "Mother and two children need a safe place tonight.", chromedp.ByQuery),
		consent("forward", "the mother"),
		chromedp.Click("#do-forward", chromedp.ByQuery),
		chromedp.WaitVisible(`#status[data-status="forwarded"]`, chromedp.ByQuery),
		chromedp.Click(`dl.details a[href^="/ui/referrals/"]`, chromedp.ByQuery),
		chromedp.WaitVisible(`#status`, chromedp.ByQuery),
	)

	// The shelter accepts, starts, tells the clinic where the family
	// stays, and completes.
	shelter.signIn("kz-zhan-saya-caseworker")
	shelter.run("the overdue referral stands out in the shelter's inbox",
		chromedp.WaitVisible("tr.overdue strong.badge-overdue", chromedp.ByQuery))
	shelter.shot("inbox")
	shelter.run("the shelter accepts and starts",
		chromedp.WaitVisible(`tr[data-referral] a`, chromedp.ByQuery),
		chromedp.Click(`tr[data-referral] a`, chromedp.ByQuery),
		// A shelter's acceptance is a placement: a bed, until when, and
		// where (which stays at the shelter).
		chromedp.WaitVisible("#accept-bed", chromedp.ByQuery),
		chromedp.SendKeys("#accept-bed", "B-4", chromedp.ByQuery),
		chromedp.SetValue("#accept-ends_on", time.Now().AddDate(0, 3, 0).Format("2006-01-02"), chromedp.ByQuery),
		chromedp.SendKeys("#accept-address", address, chromedp.ByQuery),
		chromedp.Click("#do-accept", chromedp.ByQuery),
		chromedp.WaitVisible(`#status[data-status="accepted"]`, chromedp.ByQuery),
		chromedp.Click("#do-start", chromedp.ByQuery),
		chromedp.WaitVisible(`#status[data-status="in_progress"]`, chromedp.ByQuery),
	)
	var caseID, shelterURL string
	shelter.run("read the case", chromedp.Text("#case-link", &caseID, chromedp.ByQuery), chromedp.Location(&shelterURL))
	shelterPath := strings.TrimPrefix(shelterURL, shelter.base)
	shelter.open("/ui/new?case=" + caseID)
	shelter.run("the shelter refers the mother to the perinatal centre, with its address",
		chromedp.WaitVisible("#note", chromedp.ByQuery),
		chromedp.SetValue("#offer", "kz-almaty-perinatal/medical_accompaniment", chromedp.ByQuery),
		chromedp.SendKeys("#note", address, chromedp.ByQuery),
		consent("new", "the mother"),
		chromedp.Submit("#note", chromedp.ByQuery),
		chromedp.WaitVisible(`#status`, chromedp.ByQuery),
	)
	shelter.open(shelterPath)
	shelter.run("the shelter completes",
		chromedp.WaitVisible("#complete-outcome", chromedp.ByQuery),
		chromedp.SendKeys("#complete-outcome", "Placed in the shelter with both children; psychologist assigned.", chromedp.ByQuery),
		chromedp.Click("#do-complete", chromedp.ByQuery),
		chromedp.WaitVisible(`#status[data-status="completed"]`, chromedp.ByQuery),
	)
	shelter.a11y()
	shelter.shot("referral")

	// Social's open page shows the completion without a reload.
	social.run("social sees the shelter complete, live",
		chromedp.WaitVisible(`#status[data-status="completed"]`, chromedp.ByQuery),
	)
	social.shot("referral-sender")
	social.open("/ui/sent")
	social.run("social's sent view", chromedp.WaitVisible("#live", chromedp.ByQuery))
	social.shot("sent")

	// The school sees its referral forwarded.
	school.open("/ui/sent")
	school.run("the school sees its referral forwarded",
		chromedp.WaitVisible(`span[data-status="forwarded"]`, chromedp.ByQuery),
	)

	// The address is on the shelter's pages, and on no page of the school
	// or of social protection.
	shelter.open("/ui/sent")
	shelter.run("the shelter's sent view", chromedp.WaitVisible("#live", chromedp.ByQuery))
	if !strings.Contains(shelter.html(), "medical") && !strings.Contains(shelter.html(), "Медицин") {
		t.Fatal("the shelter's sent view lacks its referral to the clinic")
	}
	for _, tb := range []*tab{school, social} {
		pages := []string{"/ui/inbox", "/ui/sent"}
		for _, box := range []string{"/ui/inbox", "/ui/sent"} {
			var links []string
			tb.open(box)
			tb.run("list "+box, chromedp.WaitVisible("#live", chromedp.ByQuery),
				chromedp.Evaluate(`[...document.querySelectorAll("tr[data-referral] a")].map(a => a.getAttribute("href"))`, &links))
			pages = append(pages, links...)
		}
		if len(pages) < 3 {
			t.Fatalf("%s lists no referral", tb.base)
		}
		placed := false
		for _, p := range pages {
			tb.open(p)
			h := tb.html()
			if strings.Contains(h, "Zheltoksan") {
				t.Fatalf("the shelter's address shows on %s%s", tb.base, p)
			}
			placed = placed || strings.Contains(h, `id="work"`) && strings.Contains(h, "B-4")
		}
		// Social, which referred the family to the shelter, sees that it
		// is placed (the bed, until when), not where.
		if tb == social && !placed {
			t.Error("social's pages do not show the shelter's placement")
		}
	}
	if h := shelter.html(); !strings.Contains(h, "Zheltoksan") {
		// Guard against a check that cannot fail: the shelter itself sees it.
		shelter.run("open the clinic referral", chromedp.Click(`tr[data-referral] a`, chromedp.ByQuery), chromedp.WaitVisible("#note", chromedp.ByQuery))
		if !strings.Contains(shelter.html(), "Zheltoksan") {
			t.Fatal("the shelter's own referral page lacks the address it wrote")
		}
	}

	// On a phone's screen (375 px) no page is wider than the screen: the
	// tables turn into cards.
	social.run("a phone's screen", chromedp.EmulateViewport(375, 800))
	var pages []string
	social.open("/ui/inbox")
	social.run("list the referrals", chromedp.WaitVisible("#live", chromedp.ByQuery),
		chromedp.Evaluate(`[...document.querySelectorAll("tr[data-referral] a")].map(a => a.getAttribute("href"))`, &pages))
	for _, p := range append([]string{"/ui/inbox", "/ui/sent", "/ui/new"}, pages...) {
		social.open(p)
		var width int
		social.run("width of "+p, chromedp.Evaluate(`document.documentElement.scrollWidth`, &width))
		if width > 375 {
			t.Errorf("at 375 px, %s is %d px wide", p, width)
		}
	}
	social.run("back to a desktop's screen", chromedp.EmulateViewport(1280, 900))

	// The language follows the user: the school switches to Kazakh.
	school.run("switch to Kazakh",
		chromedp.SetValue("#lang", "kk", chromedp.ByQuery),
		chromedp.Submit("#lang", chromedp.ByQuery),
		chromedp.WaitVisible(`html[lang="kk"]`, chromedp.ByQuery),
	)
	school.signIn("kz-almaty-school-12-caseworker")
	school.run("Kazakh after signing in again", chromedp.WaitVisible(`html[lang="kk"]`, chromedp.ByQuery))
	school.open("/ui/new")
	var mark string
	school.run("new form", chromedp.WaitVisible("#note", chromedp.ByQuery),
		chromedp.Evaluate(`getComputedStyle(document.querySelector("label[for=note]"), "::after").content`, &mark))
	if mark != `" *"` {
		t.Errorf("the note, which must be filled in, is not marked: %q", mark)
	}
	school.a11y()
	school.shot("new-kk")
	school.open("/ui/login")
	school.run("sign out", chromedp.WaitVisible("#username", chromedp.ByQuery))
	school.shot("login")
}

// consent fills the consent fields of the form whose fields' ids start
// with prefix: who consented, why, for a month.
func consent(prefix, who string) chromedp.Action {
	return chromedp.Tasks{
		chromedp.SendKeys("#"+prefix+"-consent_given_by", who, chromedp.ByQuery),
		chromedp.SendKeys("#"+prefix+"-consent_purpose", "help for the family", chromedp.ByQuery),
		chromedp.SetValue("#"+prefix+"-consent_until", time.Now().AddDate(0, 1, 0).Format("2006-01-02"), chromedp.ByQuery),
	}
}

func trim(s string) string {
	if len(s) > 3000 {
		return s[:3000] + "…"
	}
	return s
}
