package scenario_test

import (
	"strings"
	"testing"

	cdpnetwork "github.com/chromedp/cdproto/network"
	"github.com/chromedp/chromedp"
)

// TestBrowserLiveUpdatesBanner: when a page's live updates stop, the page
// says so, in the user's language, and says nothing once they are back:
// first the network is cut (the browser goes offline and the server drops
// the stream), then the node's server stops.
func TestBrowserLiveUpdatesBanner(t *testing.T) {
	t.Parallel()
	b := browser(t, "kk")
	n := uiNetwork(t, []demoNode{kz[2]}, nil)
	node := n.Node("social")
	social := newTab(t, b, node.HTTP.URL)
	social.open("/ui/login")
	social.run("choose Kazakh", chromedp.SetValue("#lang", "kk", chromedp.ByQuery), chromedp.Submit("#lang", chromedp.ByQuery),
		chromedp.WaitVisible(`html[lang="kk"] #username`, chromedp.ByQuery))
	social.signIn("social-supervisor")
	var text string
	social.run("the banner's words", chromedp.Evaluate(`document.getElementById("live-lost-text").content.textContent`, &text))
	if !strings.Contains(text, "жаңартулар тоқтады") {
		t.Fatalf("the banner's words are not Kazakh: %q", text)
	}
	banner := func(what string, shown bool) {
		t.Helper()
		want := `#live-lost:empty`
		if shown {
			want = `#live-lost:not(:empty)`
		}
		social.run(what, chromedp.WaitReady(want, chromedp.ByQuery))
		var got string
		social.run("read the banner", chromedp.Text("#live-lost", &got, chromedp.ByQuery, chromedp.AtLeast(0)))
		if shown != strings.Contains(got, "жаңартулар тоқтады") {
			t.Fatalf("%s: the banner says %q", what, got)
		}
	}
	banner("no banner while the live updates work", false)

	social.run("cut the network", cdpnetwork.EmulateNetworkConditions(true, 0, -1, -1))
	node.HTTP.CloseClientConnections()
	banner("the banner shows once the stream drops", true)
	social.run("mend the network", cdpnetwork.EmulateNetworkConditions(false, 0, -1, -1))
	banner("the banner goes when the stream is back", false)

	if err := node.Stop(); err != nil {
		t.Fatal(err)
	}
	banner("the banner shows when the server stops", true)
}
