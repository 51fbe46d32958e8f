package main

// The interactive side of "shmio top": a bubbletea program that samples on a timer and draws
// the table with lipgloss styles. Rows are aligned as plain text first (tabwriter), then styled
// whole, so colours never disturb the columns.

import (
	"bytes"
	"fmt"
	"strings"
	"text/tabwriter"
	"time"

	tea "github.com/charmbracelet/bubbletea"
	"github.com/charmbracelet/lipgloss"
	"github.com/shmio/shmio"
)

var (
	topTitleStyle = lipgloss.NewStyle().Bold(true)
	topHeadStyle  = lipgloss.NewStyle().Bold(true).Underline(true)
	topAlertStyle = lipgloss.NewStyle().Foreground(lipgloss.Color("1")).Bold(true)
	topSelStyle   = lipgloss.NewStyle().Reverse(true)
)

type topTick struct{}

type topModel struct {
	in      *shmio.Inspector
	targets []string
	o       *topOptions
	key     string
	rows    []topStore
	err     error
	sel     string // path of the selected store, kept across refreshes and sorts
	at      time.Time
	width   int
	height  int
}

func runTopView(targets []string, o *topOptions) error {
	m := &topModel{in: shmio.NewInspector(shmio.InspectOptions{}), targets: targets, o: o, key: o.sort, width: 120, height: 40}
	_, err := tea.NewProgram(m, tea.WithAltScreen()).Run()
	return err
}

func (m *topModel) Init() tea.Cmd { return func() tea.Msg { return topTick{} } }

func (m *topModel) Update(msg tea.Msg) (tea.Model, tea.Cmd) {
	switch msg := msg.(type) {
	case topTick:
		m.rows, m.err = topSample(m.in, m.targets, m.o, m.key)
		m.at = time.Now()
		if m.index() < 0 && len(m.rows) > 0 {
			m.sel = m.rows[0].Path
		}
		return m, tea.Tick(m.o.interval, func(time.Time) tea.Msg { return topTick{} })
	case tea.WindowSizeMsg:
		m.width, m.height = msg.Width, msg.Height
	case tea.KeyMsg:
		switch msg.String() {
		case "q", "ctrl+c", "esc":
			return m, tea.Quit
		case "r", "f", "l", "p":
			m.key = map[string]string{"r": "rate", "f": "fill", "l": "lag", "p": "path"}[msg.String()]
			sortTop(m.rows, m.key)
		case "up", "k":
			m.move(-1)
		case "down", "j":
			m.move(1)
		case "home", "g":
			m.move(-len(m.rows))
		case "end", "G":
			m.move(len(m.rows))
		}
	}
	return m, nil
}

// index is the position of the selected store, -1 when it is gone.
func (m *topModel) index() int {
	for i, r := range m.rows {
		if r.Path == m.sel {
			return i
		}
	}
	return -1
}

func (m *topModel) move(d int) {
	if len(m.rows) == 0 {
		return
	}
	i := min(max(m.index()+d, 0), len(m.rows)-1)
	m.sel = m.rows[i].Path
}

func (m *topModel) View() string {
	var b strings.Builder
	alerts := 0
	for _, r := range m.rows {
		if len(r.Alerts) > 0 {
			alerts++
		}
	}
	title := fmt.Sprintf("shmio top  %s  %d stores, %d alerting  sort: %s", strings.Join(m.targets, " "), len(m.rows), alerts, m.key)
	b.WriteString(topTitleStyle.Render(m.cut(title)) + "\n")
	status := "keys: r f l p sort by rate/fill/lag/path, up/down move, q quit"
	if !m.at.IsZero() {
		status = m.at.Format("15:04:05") + "  " + status
	}
	if m.err != nil {
		status = "error: " + m.err.Error()
	}
	b.WriteString(m.cut(status) + "\n")

	// Align everything as plain text, then style whole lines.
	var buf bytes.Buffer
	tw := tabwriter.NewWriter(&buf, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, topHeader)
	type kind struct {
		store int // index in m.rows
		alert bool
	}
	kinds := []kind{{-1, false}}
	for i, t := range m.rows {
		fmt.Fprintln(tw, t.line())
		kinds = append(kinds, kind{i, len(t.Alerts) > 0})
		for _, r := range t.Readers {
			fmt.Fprintln(tw, r.line())
			kinds = append(kinds, kind{i, r.LagSeconds > m.o.lag.Seconds()})
		}
	}
	tw.Flush()
	lines := strings.Split(strings.TrimSuffix(buf.String(), "\n"), "\n")
	b.WriteString(topHeadStyle.Render(m.cut(lines[0])) + "\n")
	lines, kinds = lines[1:], kinds[1:]

	// Scroll so the selected store's first line is visible.
	room := max(m.height-4, 1)
	first, sel := 0, m.index()
	for i, k := range kinds {
		if k.store == sel {
			first = i
			break
		}
	}
	start := max(first-room+1, 0)
	for i := start; i < len(lines) && i < start+room; i++ {
		line, k := m.cut(lines[i]), kinds[i]
		switch {
		case i == first && k.store == sel && k.alert:
			line = topSelStyle.Inherit(topAlertStyle).Render(line)
		case i == first && k.store == sel:
			line = topSelStyle.Render(line)
		case k.alert:
			line = topAlertStyle.Render(line)
		}
		b.WriteString(line + "\n")
	}
	if len(m.rows) == 0 {
		b.WriteString("no logs or queues found\n")
	}
	return b.String()
}

// cut shortens a plain line to the terminal width so it never wraps.
func (m *topModel) cut(s string) string {
	if r := []rune(s); m.width > 1 && len(r) > m.width-1 {
		return string(r[:m.width-1])
	}
	return s
}
