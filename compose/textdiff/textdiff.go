package textdiff

import (
	"fmt"
	"strings"
)

// Op is what happens to one line.
type Op byte

// The operations of an edit script.
const (
	Keep   Op = ' '
	Delete Op = '-'
	Insert Op = '+'
)

// Line is one line of an edit script.
type Line struct {
	Op   Op
	Text string
}

// MaxEdits bounds the work: two texts further apart than this are shown as
// everything removed and everything added, rather than costing the server
// quadratic time on a hostile pair.
const MaxEdits = 1000

// Lines returns an edit script turning a into b.
func Lines(a, b []string) []Line {
	n, m := len(a), len(b)
	max := n + m
	if max > MaxEdits {
		max = MaxEdits
	}
	// v[k+off] is the furthest x on diagonal k. trace[d] keeps diagonals
	// -d-1..d+1 of v as round d found it: O(D²) memory, bounded by MaxEdits.
	off := max + 1
	v := make([]int, 2*max+3)
	var trace [][]int
	found := false
	for d := 0; d <= max && !found; d++ {
		trace = append(trace, append([]int(nil), v[off-d-1:off+d+2]...))
		for k := -d; k <= d; k += 2 {
			var x int
			if k == -d || (k != d && v[k-1+off] < v[k+1+off]) {
				x = v[k+1+off]
			} else {
				x = v[k-1+off] + 1
			}
			y := x - k
			for x < n && y < m && a[x] == b[y] {
				x, y = x+1, y+1
			}
			v[k+off] = x
			if x >= n && y >= m {
				found = true
				break
			}
		}
	}
	if !found {
		out := make([]Line, 0, n+m)
		for _, l := range a {
			out = append(out, Line{Delete, l})
		}
		for _, l := range b {
			out = append(out, Line{Insert, l})
		}
		return out
	}
	// Walk back through the rounds from (n, m).
	var rev []Line
	x, y := n, m
	for d := len(trace) - 1; d >= 0; d-- {
		vd := trace[d]
		at := func(k int) int { return vd[k+d+1] }
		k := x - y
		var prevK int
		if k == -d || (k != d && at(k-1) < at(k+1)) {
			prevK = k + 1
		} else {
			prevK = k - 1
		}
		prevX := at(prevK)
		prevY := prevX - prevK
		for x > prevX && y > prevY {
			x, y = x-1, y-1
			rev = append(rev, Line{Keep, a[x]})
		}
		if d > 0 {
			if x == prevX {
				y--
				rev = append(rev, Line{Insert, b[y]})
			} else {
				x--
				rev = append(rev, Line{Delete, a[x]})
			}
		}
	}
	out := make([]Line, len(rev))
	for i, l := range rev {
		out[len(rev)-1-i] = l
	}
	return out
}

// Stats counts the added and removed lines of a script.
func Stats(script []Line) (added, removed int) {
	for _, l := range script {
		switch l.Op {
		case Insert:
			added++
		case Delete:
			removed++
		}
	}
	return added, removed
}

// Unified writes a unified diff of a and b with three lines of context;
// "" when they are equal.
func Unified(fromName, toName, a, b string) string {
	script := Lines(split(a), split(b))
	const ctx = 3
	var sb strings.Builder
	// Hunks: runs of changes with their context, merged when close.
	i := 0
	header := false
	for i < len(script) {
		if script[i].Op == Keep {
			i++
			continue
		}
		start := max(i-ctx, 0)
		end := i
		for end < len(script) {
			if script[end].Op != Keep {
				end++
				continue
			}
			j := end
			for j < len(script) && script[j].Op == Keep && j-end < 2*ctx {
				j++
			}
			if j < len(script) && script[j].Op != Keep {
				end = j
				continue
			}
			end = min(end+ctx, len(script))
			break
		}
		if !header {
			fmt.Fprintf(&sb, "--- %s\n+++ %s\n", fromName, toName)
			header = true
		}
		aStart, bStart := 1, 1
		for _, l := range script[:start] {
			if l.Op != Insert {
				aStart++
			}
			if l.Op != Delete {
				bStart++
			}
		}
		aLen, bLen := 0, 0
		for _, l := range script[start:end] {
			if l.Op != Insert {
				aLen++
			}
			if l.Op != Delete {
				bLen++
			}
		}
		fmt.Fprintf(&sb, "@@ -%d,%d +%d,%d @@\n", aStart, aLen, bStart, bLen)
		for _, l := range script[start:end] {
			sb.WriteByte(byte(l.Op))
			sb.WriteString(l.Text)
			sb.WriteByte('\n')
		}
		i = end
	}
	return sb.String()
}

func split(s string) []string {
	if s == "" {
		return nil
	}
	return strings.Split(strings.TrimSuffix(s, "\n"), "\n")
}

// Count is how many lines going from a to b adds and removes.
func Count(a, b string) (added, removed int) {
	return Stats(Lines(split(a), split(b)))
}
