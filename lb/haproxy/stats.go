package haproxy

import (
	"encoding/csv"
	"fmt"
	"strconv"
	"strings"

	"github.com/berth-dev/berth/lb"
)

// statRow is one server line of "show stat", reduced to what berth uses.
type statRow struct {
	Proxy, Server string
	Status        string
	// Weight is the user weight ("uweight"): what "set server weight" set.
	// The "weight" column is the effective weight, which HAProxy reports as
	// 1 for a server in maintenance whatever its configured weight.
	Weight     int
	Addr       string
	Scur, Stot int64
	// H1xx..Hother are the hrsp_* columns: responses by status class.
	H1xx, H2xx, H3xx, H4xx, H5xx, Hother int64
	Rtime                                int64
}

// parseShowStat reads the CSV of "show stat", locating columns by the header
// line so that columns added by later HAProxy versions change nothing.
func parseShowStat(out string) ([]statRow, error) {
	if !strings.HasPrefix(out, "# pxname,") {
		return nil, fmt.Errorf("haproxy: unexpected show stat reply: %.200q", out)
	}
	r := csv.NewReader(strings.NewReader(strings.TrimPrefix(out, "# ")))
	r.FieldsPerRecord = -1
	r.LazyQuotes = true
	recs, err := r.ReadAll()
	if err != nil {
		return nil, fmt.Errorf("haproxy: parse show stat: %w", err)
	}
	if len(recs) == 0 {
		return nil, fmt.Errorf("haproxy: show stat without header")
	}
	col := map[string]int{}
	for i, h := range recs[0] {
		col[h] = i
	}
	for _, need := range []string{"pxname", "svname", "status", "weight", "scur", "stot"} {
		if _, ok := col[need]; !ok {
			return nil, fmt.Errorf("haproxy: show stat has no %q column", need)
		}
	}
	get := func(rec []string, name string) string {
		if i, ok := col[name]; ok && i < len(rec) {
			return rec[i]
		}
		return ""
	}
	num := func(rec []string, name string) int64 {
		n, _ := strconv.ParseInt(get(rec, name), 10, 64)
		return n
	}
	var rows []statRow
	for _, rec := range recs[1:] {
		sv := get(rec, "svname")
		if sv == "" || sv == "FRONTEND" || sv == "BACKEND" {
			continue
		}
		wcol := "uweight"
		if _, ok := col[wcol]; !ok {
			wcol = "weight" // before HAProxy 2.5 only the effective weight exists
		}
		rows = append(rows, statRow{
			Proxy:  get(rec, "pxname"),
			Server: sv,
			Status: get(rec, "status"),
			Weight: int(num(rec, wcol)),
			Addr:   get(rec, "addr"),
			Scur:   num(rec, "scur"),
			Stot:   num(rec, "stot"),
			H1xx:   num(rec, "hrsp_1xx"),
			H2xx:   num(rec, "hrsp_2xx"),
			H3xx:   num(rec, "hrsp_3xx"),
			H4xx:   num(rec, "hrsp_4xx"),
			H5xx:   num(rec, "hrsp_5xx"),
			Hother: num(rec, "hrsp_other"),
			Rtime:  num(rec, "rtime"),
		})
	}
	return rows, nil
}

// StateDown is reported by Stats for a server that is administratively
// ready but failing its health checks. It is not a state one can set.
const StateDown = "down"

// statusState maps HAProxy's status column to berth's states. Transitional
// statuses count as where the server is now: "UP 1/3" (going down) still
// takes traffic, "DOWN 1/2" (coming up) does not yet.
func statusState(status string) string {
	s := strings.TrimSpace(status)
	switch {
	case strings.HasPrefix(s, "MAINT"):
		return lb.StateMaint
	case strings.HasPrefix(s, "DRAIN"), strings.HasPrefix(s, "NOLB"):
		return lb.StateDrain
	case strings.HasPrefix(s, "UP"), s == "no check":
		return lb.StateReady
	default:
		// DOWN, and anything a later version invents: never claim a server
		// takes traffic when HAProxy did not say so.
		return StateDown
	}
}

func (r statRow) stats() lb.ServerStats {
	return lb.ServerStats{
		Name:            r.Server,
		State:           statusState(r.Status),
		Weight:          r.Weight,
		CurrentSessions: r.Scur,
		TotalSessions:   r.Stot,
		// Counted from responses rather than from req_tot so that Requests
		// and the per-class counts always add up; in tcp mode all are 0.
		Requests:      r.H1xx + r.H2xx + r.H3xx + r.H4xx + r.H5xx + r.Hother,
		Responses2xx:  r.H2xx,
		Responses4xx:  r.H4xx,
		Responses5xx:  r.H5xx,
		AvgResponseMs: r.Rtime,
	}
}

// Admin state bits of "show servers state" (management.txt, srv_admin_state).
const (
	admFMaint = 0x01
	admIMaint = 0x02
	admFDrain = 0x08
	admIDrain = 0x10
	admRMaint = 0x20
)

// serverAdmin is one line of "show servers state".
type serverAdmin struct {
	Backend, Server string
	Admin           int
	Weight          int
}

// state is the administrative state alone. It is needed where "show stat"
// says DOWN: a failing health check hides whether the server is drained.
// CMAINT (0x04) is left out on purpose: it only records that the
// configuration said "disabled" and stays set after "enable server".
func (a serverAdmin) state() string {
	switch {
	case a.Admin&(admFMaint|admIMaint|admRMaint) != 0:
		return lb.StateMaint
	case a.Admin&(admFDrain|admIDrain) != 0:
		return lb.StateDrain
	}
	return lb.StateReady
}

func parseServersState(out string) ([]serverAdmin, error) {
	var hdr map[string]int
	var res []serverAdmin
	for _, line := range strings.Split(out, "\n") {
		line = strings.TrimSpace(line)
		if strings.HasPrefix(line, "# be_id ") {
			hdr = map[string]int{}
			for i, f := range strings.Fields(strings.TrimPrefix(line, "# ")) {
				hdr[f] = i
			}
			continue
		}
		if line == "" || strings.HasPrefix(line, "#") || hdr == nil {
			continue
		}
		f := strings.Fields(line)
		get := func(name string) string {
			if i, ok := hdr[name]; ok && i < len(f) {
				return f[i]
			}
			return ""
		}
		adm, err := strconv.Atoi(get("srv_admin_state"))
		if err != nil {
			return nil, fmt.Errorf("haproxy: bad show servers state line %q", line)
		}
		w, _ := strconv.Atoi(get("srv_uweight"))
		res = append(res, serverAdmin{Backend: get("be_name"), Server: get("srv_name"), Admin: adm, Weight: w})
	}
	if hdr == nil {
		return nil, fmt.Errorf("haproxy: unexpected show servers state reply: %.200q", out)
	}
	return res, nil
}

// procList is the master CLI's "show proc".
type procList struct {
	Master  int
	Reloads int
	Failed  int
	Workers []int // current workers, not the old ones still finishing
}

// parseShowProc reads lines such as
//
//	19437           master          2 [failed: 1]   0d00h00m41s     2.6.12
//	# workers
//	22210           worker          1               0d00h00m16s     2.6.12
//	# old workers
func parseShowProc(out string) (procList, error) {
	var p procList
	section := ""
	for _, line := range strings.Split(out, "\n") {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "#<") {
			continue
		}
		if strings.HasPrefix(line, "#") {
			section = strings.TrimSpace(strings.TrimPrefix(line, "#"))
			continue
		}
		f := strings.Fields(line)
		if len(f) < 3 {
			continue
		}
		pid, err := strconv.Atoi(f[0])
		if err != nil {
			continue
		}
		switch {
		case f[1] == "master":
			p.Master = pid
			p.Reloads, _ = strconv.Atoi(f[2])
			if len(f) >= 5 && f[3] == "[failed:" {
				p.Failed, _ = strconv.Atoi(strings.TrimSuffix(f[4], "]"))
			}
		case section == "workers" && f[1] == "worker":
			p.Workers = append(p.Workers, pid)
		}
	}
	if p.Master == 0 {
		return p, fmt.Errorf("haproxy: unexpected show proc reply: %.200q", out)
	}
	return p, nil
}

// parseInfoPid extracts "Pid: N" from "show info".
func parseInfoPid(out string) int {
	for _, line := range strings.Split(out, "\n") {
		if v, ok := strings.CutPrefix(line, "Pid: "); ok {
			n, _ := strconv.Atoi(strings.TrimSpace(v))
			return n
		}
	}
	return 0
}
