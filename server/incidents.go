package server

import (
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"encoding/json"
	"errors"
	"net/http"
	"regexp"
	"sort"
	"strconv"
	"strings"

	"github.com/gin-gonic/gin"

	"github.com/berth-dev/berth"
	"github.com/berth-dev/berth/store"
)

// listIncidents shows what berth told (or is telling) the ticket system:
// each incident with its ticket key, state, occurrences and delivery.
func (s *Server) listIncidents(c *gin.Context) {
	f := store.IncidentFilter{State: berth.IncidentState(c.Query("state")), Kind: berth.IncidentKind(c.Query("kind"))}
	if _, ok := berth.Parse(berth.IncidentStates, string(f.State)); !ok && f.State != "" {
		s.fail(c, badRequest("state must be open or resolved"))
		return
	}
	if _, ok := berth.Parse(berth.IncidentKinds, string(f.Kind)); !ok && f.Kind != "" {
		s.fail(c, badRequest("kind is not an incident kind"))
		return
	}
	if v := c.Query("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > 500 {
			s.fail(c, badRequest("limit must be 1 to 500"))
			return
		}
		f.Limit = n
	}
	incs, err := s.store.Incidents(c.Request.Context(), f)
	if err != nil {
		s.fail(c, err)
		return
	}
	type view struct {
		store.Incident
		TicketKey string `json:"ticketKey"`
		Delivered bool   `json:"delivered"`
	}
	out := make([]view, 0, len(incs))
	for i := range incs {
		out = append(out, view{Incident: incs[i], TicketKey: incs[i].TicketKey(), Delivered: incs[i].SentVersion >= incs[i].Version})
	}
	c.JSON(http.StatusOK, gin.H{"incidents": out})
}

// Limits of an Alertmanager webhook call: Alertmanager sends a group's
// alerts in one call (max_alerts bounds it on its side too).
const (
	maxAlertBody   = 1 << 20
	maxAlertsInOne = 1000
)

// alertmanagerWebhook is the body of Alertmanager's webhook receiver
// (version 4).
type alertmanagerWebhook struct {
	Version string `json:"version"`
	Status  string `json:"status"`
	Alerts  []struct {
		Status       string            `json:"status"`
		Labels       map[string]string `json:"labels"`
		Annotations  map[string]string `json:"annotations"`
		GeneratorURL string            `json:"generatorURL"`
		Fingerprint  string            `json:"fingerprint"`
	} `json:"alerts"`
}

var fingerprintRE = regexp.MustCompile(`^[0-9a-f]{1,64}$`)

// alertSeverity maps an alert's severity label to a ticket's.
func alertSeverity(label string) string {
	switch strings.ToLower(label) {
	case "critical", "page", "emergency":
		return berth.SeverityCritical
	case "major", "error", "warning", "high":
		return berth.SeverityMajor
	}
	return berth.SeverityMinor
}

// alertmanagerHook turns the alerts of Alertmanager's webhook into
// incidents: a firing alert opens one (a repeat of it is the same one), a
// resolved alert resolves it. Alertmanager proves itself with the bearer
// token its http_config sends; without a configured token the hook is closed.
func (s *Server) alertmanagerHook(c *gin.Context) {
	want := s.cfg.AlertmanagerToken
	if want == "" {
		s.fail(c, &berth.Error{Code: berth.ENotFound, Message: "the Alertmanager hook is not configured (-alertmanager-token)"})
		return
	}
	got, ok := strings.CutPrefix(c.GetHeader("Authorization"), "Bearer ")
	if !ok || subtle.ConstantTimeCompare([]byte(got), []byte(want)) != 1 {
		s.fail(c, &berth.Error{Code: berth.EUnauthorized, Message: "the Alertmanager hook needs its bearer token"})
		return
	}
	var body alertmanagerWebhook
	dec := json.NewDecoder(http.MaxBytesReader(c.Writer, c.Request.Body, maxAlertBody))
	if err := dec.Decode(&body); err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			s.fail(c, &berth.Error{Code: berth.ETooLarge, Message: "an Alertmanager call is at most 1 MiB"})
			return
		}
		s.fail(c, badRequest("the body is not an Alertmanager webhook: "+err.Error()))
		return
	}
	if body.Version != "4" {
		s.fail(c, badRequest("only version 4 of Alertmanager's webhook is understood, not "+strconv.Quote(body.Version)))
		return
	}
	if len(body.Alerts) > maxAlertsInOne {
		s.fail(c, badRequest("at most 1000 alerts in one call"))
		return
	}
	notices := make([]berth.AlertNotice, 0, len(body.Alerts))
	firing := 0
	for i, a := range body.Alerts {
		name := a.Labels["alertname"]
		if name == "" || (a.Status != "firing" && a.Status != "resolved") {
			s.fail(c, badRequest("alert "+strconv.Itoa(i)+" needs an alertname label and a status of firing or resolved"))
			return
		}
		fp := a.Fingerprint
		if !fingerprintRE.MatchString(fp) {
			fp = labelsFingerprint(a.Labels)
		}
		title := name
		if sum := a.Annotations["summary"]; sum != "" {
			title += ": " + sum
		}
		detail := a.Annotations["description"]
		if detail == "" {
			detail = a.Annotations["summary"]
		}
		link := ""
		if strings.HasPrefix(a.GeneratorURL, "http://") || strings.HasPrefix(a.GeneratorURL, "https://") {
			link = a.GeneratorURL
		}
		n := berth.AlertNotice{Fingerprint: fp, Firing: a.Status == "firing", Title: title, Detail: detail,
			Severity: alertSeverity(a.Labels["severity"]), Labels: a.Labels, Link: link}
		if n.Firing {
			firing++
		}
		notices = append(notices, n)
	}
	if err := s.store.RecordAlerts(c.Request.Context(), notices); err != nil {
		s.fail(c, err)
		return
	}
	c.JSON(http.StatusOK, gin.H{"firing": firing, "resolved": len(notices) - firing})
}

// labelsFingerprint identifies an alert by its labels when Alertmanager
// sent no usable fingerprint.
func labelsFingerprint(labels map[string]string) string {
	keys := make([]string, 0, len(labels))
	for k := range labels {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	h := sha256.New()
	for _, k := range keys {
		h.Write([]byte(k + "\x00" + labels[k] + "\x00"))
	}
	return hex.EncodeToString(h.Sum(nil))[:32]
}
