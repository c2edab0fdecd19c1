package server

import (
	"bytes"
	"errors"
	"fmt"
	"html/template"
	"io/fs"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/berth-dev/berth"
	"github.com/berth-dev/berth/store"
	"github.com/berth-dev/berth/ui"
)

// pages holds one html/template set per page: the layout, the shared
// partials and the page's own "content". html/template escapes everything
// that comes from a request or the store by context (text, attribute, URL).
type pages map[string]*template.Template

var uiFuncs = template.FuncMap{
	"icon":  stateIcon,
	"words": func(v any) string { return strings.ReplaceAll(fmt.Sprint(v), "_", " ") },
	"ts":    func(v any) string { return fmtTime(v, "2006-01-02 15:04:05 UTC") },
	"iso":   func(v any) string { return fmtTime(v, time.RFC3339) },
	"tsms":  func(v any) string { return fmtTime(v, "2006-01-02 15:04:05.000") },
	"ago":   ago,
	"took":  took,
	"ms": func(ms int64) string {
		return (time.Duration(ms) * time.Millisecond).Round(100 * time.Millisecond).String()
	},
	"gib":  func(b int64) string { return fmt.Sprintf("%.1f GiB", float64(b)/(1<<30)) },
	"cpus": func(nano int64) string { return fmt.Sprintf("%g", float64(nano)/1e9) },
	// bytes writes an amount in use, where 0 is none (BytesText's 0 is a
	// limit's "unlimited").
	// size is an amount to read at a glance: 2.7 MiB.
	"size": func(b int64) string {
		const unit = 1024
		if b < unit {
			return fmt.Sprintf("%d B", b)
		}
		f, i := float64(b)/unit, 0
		for f >= unit && i < 4 {
			f, i = f/unit, i+1
		}
		return fmt.Sprintf("%.1f %s", f, []string{"KiB", "MiB", "GiB", "TiB", "PiB"}[i])
	},
	"bytes": func(b int64) string {
		if b == 0 {
			return "0"
		}
		return berth.BytesText(b)
	},
	"decided": func(d berth.Verdict) string {
		return map[berth.Verdict]string{berth.DecisionApprove: "Approved", berth.DecisionReject: "Rejected"}[d]
	},
}

func loadPages() pages {
	tfs := ui.Templates()
	base := template.Must(template.New("base").Funcs(uiFuncs).ParseFS(tfs, "layout.html", "decide.html"))
	names, err := fs.Glob(tfs, "*.html")
	if err != nil {
		panic(err)
	}
	out := pages{}
	for _, n := range names {
		if n == "layout.html" || n == "decide.html" {
			continue
		}
		out[strings.TrimSuffix(n, ".html")] = template.Must(template.Must(base.Clone()).ParseFS(tfs, n))
	}
	return out
}

// stateIcons pairs every state with a symbol, so no state is told by colour
// alone. Keys are the states' names: runs, steps, approvals, hosts and
// applications share some of them.
var stateIcons = map[string]string{
	string(berth.StepDone): "✔", string(berth.RunSucceeded): "✔", string(berth.ApprovalApproved): "✔", string(berth.HostReady): "✔",
	string(berth.StepFailed): "✖", string(berth.ApprovalRejected): "✖", string(berth.HostDown): "✖", string(berth.StateLost): "✖",
	string(berth.StepRunning): "▶", string(berth.StateDeploying): "▶",
	string(berth.StepWaiting): "⏸", string(berth.ApprovalEscalated): "⏸", string(berth.StateStopped): "■",
	string(berth.StepCompensated): "↩",
	string(berth.RunCancelled):    "⊘", string(berth.ApprovalTimedOut): "⊘",
	string(berth.RunPending): "…",
}

// stateIcon is the symbol of any state (a run's, a step's, a host's …).
func stateIcon(state any) string {
	if i, ok := stateIcons[fmt.Sprint(state)]; ok {
		return i
	}
	return "•"
}

func fmtTime(v any, layout string) string {
	switch t := v.(type) {
	case time.Time:
		if t.IsZero() {
			return ""
		}
		return t.UTC().Format(layout)
	case *time.Time:
		if t == nil {
			return ""
		}
		return t.UTC().Format(layout)
	}
	return ""
}

func ago(v any) string {
	var t time.Time
	switch x := v.(type) {
	case time.Time:
		t = x
	case *time.Time:
		if x == nil {
			return ""
		}
		t = *x
	}
	d := time.Since(t)
	switch {
	case d < time.Minute:
		return "just now"
	case d < time.Hour:
		return fmt.Sprintf("%d min ago", int(d.Minutes()))
	case d < 48*time.Hour:
		return fmt.Sprintf("%d h ago", int(d.Hours()))
	}
	return t.UTC().Format("2006-01-02")
}

func took(start time.Time, end *time.Time) string {
	if end == nil {
		return "running"
	}
	return end.Sub(start).Round(100 * time.Millisecond).String()
}

// page is what every template gets.
type page struct {
	Title      string
	Nav        string
	User       *store.User
	Roles      string
	CSRF       string
	InboxCount int
	Admin      bool // platform-wide admin: the admin pages are offered
	Data       any
}

// staticFiles serves the UI's scripts, styles and images.
func staticFiles(fsys http.FileSystem) gin.HandlerFunc {
	return func(c *gin.Context) {
		c.Header("Cache-Control", "no-cache")
		c.FileFromFS(c.Param("file"), fsys)
	}
}

// securityHeaders: the CSP allows only this site's own scripts and styles,
// so even markup that slipped past escaping could not run.
func securityHeaders(c *gin.Context) {
	h := c.Writer.Header()
	h.Set("Content-Security-Policy", "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "+
		"connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'; object-src 'none'")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Referrer-Policy", "same-origin")
	h.Set("X-Frame-Options", "DENY")
	c.Next()
}

// uiAuth signs the browser in from its cookie; a page asked for without one
// goes to the sign-in page and comes back after.
func (s *Server) uiAuth(c *gin.Context) {
	p, err := s.identify(c)
	if err != nil {
		if berth.ErrorCode(err) == berth.EUnauthorized && c.Request.Method == http.MethodGet {
			c.Redirect(http.StatusSeeOther, "/login?next="+url.QueryEscape(c.Request.URL.RequestURI()))
			c.Abort()
			return
		}
		s.renderError(c, err)
		c.Abort()
		return
	}
	c.Set(principalKey, p)
	c.Set(actorKey, p.User.Name)
	c.Next()
}

func (s *Server) render(c *gin.Context, status int, name, title, nav string, data any) {
	pg := page{Title: title, Nav: nav, Data: data}
	if p := principalOf(c); p != nil {
		pg.User = p.User
		pg.Roles = s.rolesText(c, p)
		pg.Admin = p.has(0, berth.RoleAdmin)
		if p.Session != nil {
			pg.CSRF = p.Session.CSRF
		}
		if as, err := s.store.Approvals(c.Request.Context(), store.ApprovalFilter{
			DecidableBy: &store.DecidableBy{Name: p.User.Name, Bindings: p.Bindings}}); err == nil {
			pg.InboxCount = len(as)
		}
	}
	var buf bytes.Buffer
	if err := s.pages[name].ExecuteTemplate(&buf, "layout", pg); err != nil {
		s.log.Error("page not rendered", "page", name, "error", err)
		c.String(http.StatusInternalServerError, "the page could not be rendered; see the server log")
		return
	}
	c.Header("Cache-Control", "no-store")
	c.Data(status, "text/html; charset=utf-8", buf.Bytes())
}

func (s *Server) rolesText(c *gin.Context, p *principal) string {
	var parts []string
	for _, b := range p.Bindings {
		where := "all tenants"
		if b.TenantID != 0 {
			where = fmt.Sprint("tenant ", b.TenantID)
			if t, err := s.store.TenantByID(c.Request.Context(), b.TenantID); err == nil {
				where = t.Name
			}
		}
		parts = append(parts, string(b.Role)+" · "+where)
	}
	if len(parts) == 0 {
		return "no roles yet: ask an admin"
	}
	return strings.Join(parts, ", ")
}

type errorPage struct{ Heading, Message, Todo string }

// renderError shows an error as a page, with the same status and message
// the API would give, and what to do next.
func (s *Server) renderError(c *gin.Context, err error) {
	status, _, msg := s.classify(c, err)
	ep := errorPage{Heading: http.StatusText(status), Message: msg, Todo: "Check the address, or ask an admin for a role."}
	switch status {
	case http.StatusForbidden:
		ep.Todo = "If you need this, ask an admin of the tenant for a role."
	case http.StatusNotFound:
		ep.Todo = "It may have been removed, or the address is wrong."
	case http.StatusBadRequest:
		ep.Todo = "Correct the request and try again."
	}
	s.render(c, status, "error", ep.Heading, "", ep)
}

func (s *Server) inboxPage(c *gin.Context) {
	p := principalOf(c)
	ctx := c.Request.Context()
	as, err := s.store.Approvals(ctx, store.ApprovalFilter{DecidableBy: &store.DecidableBy{Name: p.User.Name, Bindings: p.Bindings}})
	if err != nil {
		s.renderError(c, err)
		return
	}
	cards := []decideForm{}
	for i := range as {
		cards = append(cards, decideForm{A: s.approvalView(ctx, &as[i]), CSRF: csrfOf(p)})
	}
	s.render(c, http.StatusOK, "inbox", "Inbox", "inbox", struct{ Cards []decideForm }{cards})
}

// decideForm is an approval with what the viewer may do about it; Reason,
// when set, says why the buttons are disabled.
type decideForm struct {
	A      approvalView
	CSRF   string
	Reason string
}

func csrfOf(p *principal) string {
	if p.Session != nil {
		return p.Session.CSRF
	}
	return ""
}

// cannotDecide says why the viewer may not decide an approval, or "".
func cannotDecide(a *store.Approval, p *principal) string {
	if !a.Open() {
		return "This approval is " + strings.ReplaceAll(string(a.State), "_", " ") + "."
	}
	if !mayDecideAny(a, p) {
		return fmt.Sprintf("Only %s may decide this approval; you hold none of these roles on its tenant.", strings.Join(berth.Names(a.RoleList), " or "))
	}
	if a.SeparateDuties && a.StartedBy == p.User.Name {
		return "You started this run, so someone else must approve it (separation of duties)."
	}
	for _, d := range a.Decisions {
		if d.Approver == p.User.Name {
			return fmt.Sprintf("You already decided (%s); it waits for %d more approval(s).", d.Decision, a.Quorum-a.Approvals())
		}
	}
	return ""
}

func mayDecideAny(a *store.Approval, p *principal) bool {
	for _, b := range p.Bindings {
		if (b.TenantID == 0 || b.TenantID == a.TenantID) && a.Allows(b.Role) {
			return true
		}
	}
	return false
}

// ----- runs -----

// The runs page filters on every kind and status; "" is "all".
var (
	runKinds    = append([]string{""}, berth.Names(berth.RunKinds)...)
	runStatuses = append([]string{""}, berth.Names(berth.RunStatuses)...)
)

const runsPerPage = 50

func (s *Server) runsPage(c *gin.Context) {
	p := principalOf(c)
	q := c.Request.URL.Query()
	page, _ := strconv.Atoi(q.Get("page"))
	if page < 1 {
		page = 1
	}
	// Dates from the form are days; the API's filter takes RFC 3339.
	fq := url.Values{}
	for _, k := range []string{"kind", "status", "tenant", "env", "app", "by"} {
		if v := q.Get(k); v != "" {
			fq.Set(k, v)
		}
	}
	for _, k := range []string{"since", "until"} {
		if v := q.Get(k); v != "" {
			if t, err := time.Parse("2006-01-02", v); err == nil {
				if k == "until" {
					t = t.Add(24 * time.Hour)
				}
				fq.Set(k, t.Format(time.RFC3339))
			} else {
				fq.Set(k, v)
			}
		}
	}
	data := struct {
		F                  store.RunFilter
		Q                  map[string]string
		Kinds, Statuses    []string
		Runs               []store.Run
		Total              int64
		Page, Pages        int
		Prev, Next, Export string
		Error              string
	}{Kinds: runKinds, Statuses: runStatuses, Page: page, Q: map[string]string{}}
	for k := range q {
		data.Q[k] = q.Get(k)
	}
	f, err := s.runFilter(c, fq)
	if err == nil {
		f.Limit, f.Offset = runsPerPage, (page-1)*runsPerPage
		f.TenantIDs = p.tenantIDs()
		data.Runs, data.Total, err = s.store.Runs(c.Request.Context(), f)
	}
	if err != nil {
		status, _, msg := s.classify(c, err)
		if status >= 500 {
			s.renderError(c, err)
			return
		}
		data.Error = msg + " Change the filter and try again."
	}
	data.F = f
	data.Pages = int((data.Total + runsPerPage - 1) / runsPerPage)
	export := url.Values{}
	for k, v := range fq {
		export[k] = v
	}
	export.Set("limit", strconv.Itoa(runsPerPage))
	export.Set("offset", strconv.Itoa((page-1)*runsPerPage))
	data.Export = export.Encode()
	nav := func(n int) string {
		v := url.Values{}
		for k := range q {
			v.Set(k, q.Get(k))
		}
		v.Set("page", strconv.Itoa(n))
		return v.Encode()
	}
	if page > 1 {
		data.Prev = nav(page - 1)
	}
	if page < data.Pages {
		data.Next = nav(page + 1)
	}
	s.render(c, http.StatusOK, "runs", "Runs", "runs", data)
}

// stepView is a step as the timeline shows it.
type stepView struct {
	store.Step
	End *time.Time
}

type failureView struct{ Step, Error string }

// liveData is the part of the run page that the event stream replaces.
type liveData struct {
	Run       *store.Run
	Steps     []stepView
	Approvals []approvalView
	Failure   *failureView
}

func (s *Server) liveData(c *gin.Context, run *store.Run) (liveData, error) {
	ctx := c.Request.Context()
	d := liveData{Run: run, Steps: []stepView{}, Approvals: []approvalView{}}
	for _, st := range run.Steps {
		v := stepView{Step: st}
		if st.State != berth.StepRunning && st.State != berth.StepWaiting {
			v.End = st.FinishedAt
		}
		d.Steps = append(d.Steps, v)
		if d.Failure == nil && st.State == berth.StepFailed {
			d.Failure = &failureView{Step: "step " + st.Name, Error: st.Error}
		}
	}
	if d.Failure == nil && run.Status == berth.RunFailed && run.Error != "" {
		d.Failure = &failureView{Step: "run", Error: run.Error}
	}
	as, err := s.store.RunApprovals(ctx, run.ID)
	if err != nil {
		return d, err
	}
	for i := range as {
		d.Approvals = append(d.Approvals, s.approvalView(ctx, &as[i]))
	}
	return d, nil
}

func terminal(status berth.RunStatus) bool {
	return status != berth.RunPending && status != berth.RunRunning
}

func (s *Server) runPage(c *gin.Context) {
	run, err := s.runParam(c)
	if err != nil {
		s.renderError(c, err)
		return
	}
	live, err := s.liveData(c, run)
	if err != nil {
		s.renderError(c, err)
		return
	}
	data := struct {
		Run          *store.Run
		Live         liveData
		Terminal     bool
		TemporalURL  string
		CancelReason string
		Decide       []decideForm
		Input        string
		// Retry is offered for a failed or cancelled run; RetryReason says why it is disabled.
		Retry       bool
		RetryReason string
	}{Run: run, Live: live, Terminal: terminal(run.Status), Input: run.Input, TemporalURL: s.temporalURL(run)}
	p := principalOf(c)
	data.Retry, data.RetryReason = s.retryReason(c, run, p)
	switch {
	case data.Terminal:
		data.CancelReason = "This run has finished (" + string(run.Status) + "); there is nothing to cancel."
	case mayCancel(s, c, p) != nil:
		data.CancelReason = fmt.Sprintf("Only %s (who started it), a release manager or an admin may cancel this run.", run.StartedBy)
	}
	for _, a := range live.Approvals {
		if a.Open() {
			data.Decide = append(data.Decide, decideForm{A: a, CSRF: csrfOf(p), Reason: cannotDecide(a.Approval, p)})
		}
	}
	s.render(c, http.StatusOK, "run", fmt.Sprintf("Run %d", run.ID), "runs", data)
}

// renderLive renders the live part of a run page, as the event stream sends it.
func (s *Server) renderLive(d liveData) (string, error) {
	var buf bytes.Buffer
	err := s.pages["run"].ExecuteTemplate(&buf, "runlive", d)
	return buf.String(), err
}

// ----- services and audit -----

func (s *Server) servicePage(c *gin.Context) {
	ctx := c.Request.Context()
	sc, err := s.serviceContext(c)
	if err != nil {
		s.renderError(c, err)
		return
	}
	id := sc.Service.ID
	view, err := s.store.ServiceViewOf(ctx, sc)
	if err != nil {
		s.renderError(c, err)
		return
	}
	pools, err := s.store.ServicePools(ctx, id)
	if errors.Is(err, store.ErrNotFound) {
		err = nil
	}
	if err != nil {
		s.renderError(c, err)
		return
	}
	runs, _, err := s.store.Runs(ctx, store.RunFilter{ApplicationID: sc.Application.ID, Limit: 10})
	if err != nil {
		s.renderError(c, err)
		return
	}
	versions, err := s.versionDiffs(c, sc.Application.ID)
	if err != nil {
		s.renderError(c, err)
		return
	}
	actions, err := s.runForms(c, sc)
	if err != nil {
		s.renderError(c, err)
		return
	}
	s.render(c, http.StatusOK, "service", "Service "+view.Name, "", struct {
		S        *store.ServiceView
		Ctx      *store.ServiceContext
		Pools    []berth.LBPool
		Runs     []store.Run
		Versions []versionDiff
		Update   updateForm
		Actions  runForms
	}{view, sc, pools, runs, versions, s.updateForm(c, sc), actions})
}

// runForms are the service page's scale, release and rollback forms: each
// posts to the API a script would use, or says why the viewer may not.
type runForms struct {
	Base string
	// DeployReason and RollbackReason are set when the viewer lacks the
	// role; the page shows them instead of the forms.
	DeployReason, RollbackReason string
	// OperateReason is set when the viewer may not restart, stop or start
	// instances; the instance table then shows no buttons.
	OperateReason string
	// Earlier are the releases offered to roll back to: those the API
	// accepts (Release.HasImage) that went well, other than the one
	// running, newest first.
	Earlier []store.Release
}

func (s *Server) runForms(c *gin.Context, sc *store.ServiceContext) (runForms, error) {
	f := runForms{Base: fmt.Sprintf("/api/v1/services/%d", sc.Service.ID)}
	p := principalOf(c)
	if !p.has(sc.Tenant.ID, deployRoles...) {
		f.DeployReason = denied(s, c, sc.Tenant.ID, "Scaling and releasing", deployRoles).Error() + "."
	}
	if !p.has(sc.Tenant.ID, operateRoles...) {
		f.OperateReason = denied(s, c, sc.Tenant.ID, "Restarting, stopping and starting instances", operateRoles).Error() + "."
	}
	if !p.has(sc.Tenant.ID, rollbackRoles...) {
		f.RollbackReason = denied(s, c, sc.Tenant.ID, "Rolling back", rollbackRoles).Error() + "."
		return f, nil
	}
	rels, cur, err := s.store.Releases(c.Request.Context(), sc.Service.ID)
	if err != nil {
		return f, err
	}
	for _, r := range rels {
		if r.HasImage() && r.Outcome == berth.ReleaseSucceeded && (cur == nil || r.ID != cur.CurrentID) {
			f.Earlier = append(f.Earlier, r)
		}
	}
	return f, nil
}

// updateForm is the service page's "Change the application" form: the
// application's compose file to edit, or why the viewer cannot change it.
type updateForm struct {
	Action  string
	Compose string
	// Reason is set when the form is not offered; the page shows it instead.
	Reason string
}

func (s *Server) updateForm(c *gin.Context, sc *store.ServiceContext) updateForm {
	app := sc.Application
	f := updateForm{Action: "/api/v1/tenants/" + url.PathEscape(sc.Tenant.Name) + "/environments/" + url.PathEscape(sc.Environment.Name) +
		"/applications/" + url.PathEscape(app.Name)}
	// The same refusals the PUT would give, said before anyone types.
	switch {
	case !principalOf(c).has(sc.Tenant.ID, deployRoles...):
		f.Reason = denied(s, c, sc.Tenant.ID, "Changing the application", deployRoles).Error() + "."
	case app.State != berth.StateRunning:
		f.Reason = fmt.Sprintf("The application is %s; only a running application can be changed.", app.State)
	default:
		f.Compose = app.Compose
	}
	return f
}

func (s *Server) auditPage(c *gin.Context) {
	p := principalOf(c)
	q := c.Request.URL.Query()
	data := struct {
		Q      map[string]string
		Events []store.AuditEvent
		Error  string
	}{Q: map[string]string{"actor": q.Get("actor"), "action": q.Get("action")}}
	f := store.AuditFilter{Actor: q.Get("actor"), Action: q.Get("action"), Limit: 100}
	if !p.has(0, auditRoles...) {
		// Everyone may see their own actions; the whole log is for release managers and admins.
		f.Actor = p.User.Name
		data.Error = "You see your own actions only: the whole log needs role release-manager or admin platform-wide."
	}
	evs, _, err := s.store.QueryAudit(c.Request.Context(), f)
	if err != nil {
		s.renderError(c, err)
		return
	}
	data.Events = evs
	s.render(c, http.StatusOK, "audit", "Audit", "audit", data)
}
