package web

import (
	"fmt"
	"html"
	"html/template"
	"strings"
	"unicode/utf8"
)

// barChart is a horizontal bar chart drawn on the server as inline SVG:
// no script, and nothing the page's Content-Security-Policy blocks (the
// colours come from the classes in static/app.css, the sizes from
// attributes). It is an image to assistive technology (role="img" with a
// title): the page shows the same figures in a table.
type barChart struct {
	// ID makes the ids of the chart's title unique on the page.
	ID    string
	Title string
	// Desc says where the figures are as text.
	Desc   string
	Labels []string
	Series []barSeries
	// Stacked draws a label's series one after the other in one bar,
	// rather than a bar each.
	Stacked bool
}

// barSeries is one set of figures of a chart, one value per label; Text
// is how each value is written beside its bar (the value itself if nil).
type barSeries struct {
	Name, Class string
	Values      []float64
	Text        []string
}

// The chart's geometry, in the units of its viewBox; the SVG scales to the
// width of its box (static/app.css).
const (
	chartWidth   = 640
	chartLabels  = 190 // the labels' column
	chartValues  = 80  // room for the value after the longest bar
	chartBar     = 16
	chartGap     = 12 // between two labels' bars
	chartLegend  = 22 // a row of the legend
	chartLegendW = 210
	chartFont    = 13
	labelRunes   = 26 // longer labels are cut; the table has them whole
)

// SVG draws the chart.
func (c barChart) SVG() template.HTML {
	perRow := chartWidth / chartLegendW
	legendRows := (len(c.Series) + perRow - 1) / perRow
	top := float64(legendRows*chartLegend) + 8

	barsPerLabel := len(c.Series)
	if c.Stacked {
		barsPerLabel = 1
	}
	rowH := float64(barsPerLabel*(chartBar+2) + chartGap)
	height := top + rowH*float64(len(c.Labels)) + 4
	if len(c.Labels) == 0 {
		height = top + 4
	}

	var max float64
	for i := range c.Labels {
		sum := 0.0
		for _, s := range c.Series {
			v := s.value(i)
			if c.Stacked {
				sum += v
			} else if v > max {
				max = v
			}
		}
		if sum > max {
			max = sum
		}
	}
	scale := 0.0
	if max > 0 {
		scale = float64(chartWidth-chartLabels-chartValues) / max
	}

	var b strings.Builder
	esc := html.EscapeString
	fmt.Fprintf(&b, `<svg class="chart" xmlns="http://www.w3.org/2000/svg" viewBox="0 0 %d %.0f" role="img" aria-labelledby="%s-title %s-desc" font-size="%d">`,
		chartWidth, height, esc(c.ID), esc(c.ID), chartFont)
	fmt.Fprintf(&b, `<title id="%s-title">%s</title><desc id="%s-desc">%s</desc>`, esc(c.ID), esc(c.Title), esc(c.ID), esc(c.Desc))
	for i, s := range c.Series {
		x := (i % perRow) * chartLegendW
		y := (i / perRow) * chartLegend
		fmt.Fprintf(&b, `<rect class="%s" x="%d" y="%d" width="14" height="14"/><text x="%d" y="%d">%s</text>`,
			esc(s.Class), x, y+2, x+20, y+14, esc(s.Name))
	}
	for i, label := range c.Labels {
		y := top + rowH*float64(i)
		mid := y + float64(barsPerLabel*(chartBar+2))/2
		fmt.Fprintf(&b, `<text class="chart-label" x="%d" y="%.0f" text-anchor="end" dominant-baseline="middle">%s</text>`,
			chartLabels-8, mid, esc(cut(label)))
		x := float64(chartLabels)
		for j, s := range c.Series {
			v := s.value(i)
			w := v * scale
			if c.Stacked {
				if w > 0 {
					fmt.Fprintf(&b, `<rect class="%s" x="%.1f" y="%.0f" width="%.1f" height="%d"/>`, esc(s.Class), x, y, w, chartBar)
				}
				x += w
				continue
			}
			by := y + float64(j*(chartBar+2))
			if w > 0 {
				fmt.Fprintf(&b, `<rect class="%s" x="%d" y="%.0f" width="%.1f" height="%d"/>`, esc(s.Class), chartLabels, by, w, chartBar)
			}
			fmt.Fprintf(&b, `<text x="%.1f" y="%.0f" dominant-baseline="middle">%s</text>`, float64(chartLabels)+w+4, by+chartBar/2, esc(s.text(i)))
		}
		if c.Stacked {
			total := 0.0
			for _, s := range c.Series {
				total += s.value(i)
			}
			fmt.Fprintf(&b, `<text x="%.1f" y="%.0f" dominant-baseline="middle">%s</text>`, x+4, y+chartBar/2, esc(formatNumber(total)))
		}
	}
	b.WriteString(`</svg>`)
	return template.HTML(b.String())
}

func (s barSeries) value(i int) float64 {
	if i < len(s.Values) && s.Values[i] > 0 {
		return s.Values[i]
	}
	return 0
}

func (s barSeries) text(i int) string {
	if i < len(s.Text) {
		return s.Text[i]
	}
	return formatNumber(s.value(i))
}

func formatNumber(v float64) string {
	if v == float64(int64(v)) {
		return fmt.Sprint(int64(v))
	}
	return fmt.Sprintf("%.1f", v)
}

// cut shortens a label to what the labels' column holds.
func cut(s string) string {
	if utf8.RuneCountInString(s) <= labelRunes {
		return s
	}
	r := []rune(s)
	return string(r[:labelRunes-1]) + "…"
}
