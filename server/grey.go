package server

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/gin-gonic/gin"
	"go.temporal.io/api/serviceerror"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/temporal"
	yaml "go.yaml.in/yaml/v3"

	"github.com/berth-dev/berth"
	"github.com/berth-dev/berth/lb"
	"github.com/berth-dev/berth/store"
	"github.com/berth-dev/berth/workflows"
)

// greyPlan is what a grey release adds to a release request.
type greyPlan struct {
	canaries int
	steps    []berth.GreyStep
}

// greyRequest starts a grey release. The same document is accepted as JSON
// or, with Content-Type application/yaml, as YAML (what the UI's form sends).
type greyRequest struct {
	Image            string           `json:"image"`
	Version          string           `json:"version"`
	Canaries         int              `json:"canaries"`
	BatchSize        int              `json:"batchSize"`
	ProgressDeadline string           `json:"progressDeadline"` // default 1h
	Steps            []berth.GreyStep `json:"steps"`
}

// maxGreyDoc bounds a grey release document; steps are small.
const maxGreyDoc = 64 << 10

// decodeGrey reads a grey release document, YAML or JSON, refusing unknown
// fields so a misspelt step is an error and not a silently skipped one.
func decodeGrey(contentType string, body io.Reader) (*greyRequest, error) {
	raw, err := io.ReadAll(io.LimitReader(body, maxGreyDoc+1))
	if err != nil {
		var mb *http.MaxBytesError
		if asMaxBytes(err, &mb) {
			return nil, mb
		}
		return nil, badRequest("request body could not be read")
	}
	if len(raw) > maxGreyDoc {
		return nil, &berth.Error{Code: berth.ETooLarge, Message: fmt.Sprintf("a grey release document is at most %d KiB", maxGreyDoc>>10)}
	}
	return parseGreyDoc(contentType, raw)
}

func parseGreyDoc(contentType string, raw []byte) (*greyRequest, error) {
	if strings.Contains(contentType, "yaml") {
		var doc any
		dec := yaml.NewDecoder(bytes.NewReader(raw))
		if err := dec.Decode(&doc); err != nil {
			return nil, badRequest("grey release YAML: " + err.Error())
		}
		j, err := json.Marshal(doc)
		if err != nil {
			return nil, badRequest("grey release YAML must be a mapping of plain values: " + err.Error())
		}
		raw = j
	}
	var req greyRequest
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&req); err != nil {
		return nil, badRequest("grey release document: " + err.Error())
	}
	return &req, nil
}

// validate checks a grey release request and returns its plan.
func (req *greyRequest) validate() (releaseSpec, error) {
	if !imageRE.MatchString(req.Image) || len(req.Image) > 255 {
		return releaseSpec{}, badRequest("image must be an image reference such as registry.local/team/web:1.4.2")
	}
	if req.Version == "" {
		req.Version = store.ImageTag(req.Image)
	}
	if !versionRE.MatchString(req.Version) {
		return releaseSpec{}, badRequest("version must be 1-128 characters of letters, digits and . _ + -")
	}
	if req.Canaries == 0 {
		req.Canaries = 1
	}
	if req.Canaries < 1 || req.Canaries > berth.MaxGreyCanaries {
		return releaseSpec{}, badRequest(fmt.Sprintf("canaries must be 1..%d", berth.MaxGreyCanaries))
	}
	if err := berth.ValidateGreySteps(req.Steps); err != nil {
		return releaseSpec{}, badRequest("steps: " + err.Error())
	}
	deadline := time.Hour
	if req.ProgressDeadline != "" {
		d, err := time.ParseDuration(req.ProgressDeadline)
		if err != nil || d < 5*time.Second || d > 7*24*time.Hour {
			return releaseSpec{}, badRequest("progressDeadline must be a duration between 5s and 168h")
		}
		deadline = d
	}
	return releaseSpec{kind: berth.ReleaseImage, image: req.Image, version: req.Version, batch: req.BatchSize,
		deadline: deadline, grey: &greyPlan{canaries: req.Canaries, steps: req.Steps}}, nil
}

// greyOfPackage reads the grey field of a package upload: the canary's
// image is built from the package, so the document names none.
func greyOfPackage(doc, version string) (releaseSpec, error) {
	req, err := parseGreyDoc("application/yaml", []byte(doc))
	if err != nil {
		return releaseSpec{}, err
	}
	if req.Image != "" || (req.Version != "" && req.Version != version) {
		return releaseSpec{}, badRequest("with a package the canary runs the package: the grey document gives no image or version (use the form's version field)")
	}
	// A placeholder passes the image check; startReleaseOf replaces it
	// with the service's image (file) or the build target (build).
	req.Image, req.Version = "berth.invalid/build:"+version, version
	rs, err := req.validate()
	if err != nil {
		return rs, err
	}
	rs.image = ""
	return rs, nil
}

// createGrey starts a grey release of a service: JSON or YAML with an
// image, or a multipart package upload that is built into the image.
func (s *Server) createGrey(c *gin.Context) {
	if isMultipart(c) {
		s.createPackageRelease(c, true)
		return
	}
	req, err := decodeGrey(c.ContentType(), c.Request.Body)
	if err != nil {
		s.fail(c, err)
		return
	}
	rs, err := req.validate()
	if err != nil {
		s.fail(c, err)
		return
	}
	rs.request = replayOf(c, berth.KindGreyRelease, req)
	s.startReleaseOf(c, rs)
}

// greyView is a service's grey release as the API and the UI show it.
type greyView struct {
	RunID     uint                 `json:"runId"`
	ReleaseID uint                 `json:"releaseId"`
	Active    bool                 `json:"active"`
	State     *workflows.GreyState `json:"state,omitempty"`
	// Live are the load balancer's figures per server, canary and stable
	// summed, when the pool could be read.
	Live     []lb.ServerStats `json:"live,omitempty"`
	Canary   greyFigures      `json:"canary"`
	Stable   greyFigures      `json:"stable"`
	LiveNote string           `json:"liveNote,omitempty"`
}

// greyFigures sum servers' counters since the load balancer last (re)started.
type greyFigures struct {
	Servers   int     `json:"servers"`
	Weight    int     `json:"weight"`
	Requests  int64   `json:"requests"`
	Errors5xx int64   `json:"errors5xx"`
	ErrorRate float64 `json:"errorRate"`
	AvgMs     int64   `json:"avgMs"`
}

// greyOf finds the service's latest grey release and asks its workflow for
// its state; errNoGrey when the service never had one.
func (s *Server) greyOf(c *gin.Context, sc *store.ServiceContext) (*greyView, *store.Run, error) {
	ctx := c.Request.Context()
	rel, run, err := s.greyRelease(c, sc)
	if err != nil {
		return nil, nil, err
	}
	v := &greyView{RunID: run.ID, ReleaseID: rel.ID, Active: !terminal(run.Status)}
	qctx, cancel := contextWithTimeout(ctx, 5*time.Second)
	defer cancel()
	if resp, err := s.temporal.QueryWorkflow(qctx, run.WorkflowID, run.TemporalRunID, workflows.GreyStateQuery); err == nil {
		var st workflows.GreyState
		if resp.Get(&st) == nil {
			v.State = &st
		}
	} else if v.Active {
		v.LiveNote = "the grey release's workflow did not answer: is a worker running?"
	}
	return v, run, nil
}

// getGrey shows a service's grey release: step, weight, routes and, with
// ?live=1, the load balancer's canary and stable figures.
func (s *Server) getGrey(c *gin.Context) {
	sc, err := s.serviceContext(c)
	if err != nil {
		s.fail(c, err)
		return
	}
	v, _, err := s.greyOf(c, sc)
	if err != nil {
		s.fail(c, err)
		return
	}
	if c.Query("live") == "1" && v.Active && v.State != nil {
		s.greyLive(c, sc, v)
	}
	c.JSON(http.StatusOK, v)
}

// greyLive reads the pools through their regions' workers and sums canary
// and stable figures over every region.
func (s *Server) greyLive(c *gin.Context, sc *store.ServiceContext, v *greyView) {
	ctx := c.Request.Context()
	pools, err := s.store.ServicePools(ctx, sc.Service.ID)
	if err != nil {
		v.LiveNote = "the service has no load-balancer pool"
		return
	}
	var down []string
	v.Live, down = s.readPools(ctx, poolViews(pools))
	// A region that did not answer leaves its servers out of the sums, and
	// the page says which.
	if len(down) > 0 {
		v.LiveNote = "the load balancer of region " + strings.Join(down, ", ") + " did not answer: is its worker running?"
	}
	var cms, sms int64
	for _, st := range v.Live {
		f, ms := &v.Stable, &sms
		if slices.Contains(v.State.Canaries, st.Name) {
			f, ms = &v.Canary, &cms
		}
		f.Servers++
		f.Weight += st.Weight
		f.Requests += st.Requests
		f.Errors5xx += st.Responses5xx
		*ms += st.Requests * st.AvgResponseMs
	}
	for _, x := range []struct {
		f  *greyFigures
		ms int64
	}{{&v.Canary, cms}, {&v.Stable, sms}} {
		if x.f.Requests > 0 {
			x.f.ErrorRate = float64(x.f.Errors5xx) / float64(x.f.Requests)
			x.f.AvgMs = x.ms / x.f.Requests
		}
	}
}

type greyControlRequest struct {
	Reason string `json:"reason"`
}

// controlGrey hands promote, abort, pause or resume to the service's
// running grey release. The workflow holds the rules: what it refuses now
// answers 409 with its reason.
func (s *Server) controlGrey(c *gin.Context) {
	action := c.Param("action")
	if !slices.Contains([]string{workflows.GreyPromote, workflows.GreyAbort, workflows.GreyPauseAction, workflows.GreyResume}, action) {
		s.fail(c, &berth.Error{Code: berth.ENotFound, Message: "grey release actions are promote, abort, pause and resume"})
		return
	}
	var req greyControlRequest
	if c.Request.ContentLength != 0 {
		if err := bind(c, &req); err != nil {
			s.fail(c, err)
			return
		}
	}
	if len(req.Reason) > 500 {
		s.fail(c, badRequest("reason is at most 500 characters"))
		return
	}
	if err := s.updateGrey(c, action, req.Reason); err != nil {
		s.fail(c, err)
		return
	}
	c.JSON(http.StatusAccepted, gin.H{"action": action, "status": "sent"})
}

// greyUpdateTimeout bounds the wait for the workflow to take a control: a
// worker answers within a second, and with none the caller hears so.
const greyUpdateTimeout = 10 * time.Second

// updateGrey asks the running grey release to take the action as an
// update. Asking the workflow, not its last queried state, leaves no gap
// between the check and the act: the validator refuses with the state the
// handler acts on. Runs started before the update existed have no handler
// and take the signal instead (sendGrey).
func (s *Server) updateGrey(c *gin.Context, action, reason string) error {
	sc, err := s.serviceContext(c)
	if err != nil {
		return err
	}
	_, run, err := s.greyRelease(c, sc)
	if err != nil {
		return err
	}
	if terminal(run.Status) {
		return &berth.Error{Code: berth.EConflict, Message: fmt.Sprintf("grey release of %s has ended (run %d is %s)", sc.Service.Name, run.ID, run.Status)}
	}
	c.Set("berth.audit", fmt.Sprintf("grey %s of run %d: %s", action, run.ID, reason))
	ctx, cancel := contextWithTimeout(c.Request.Context(), greyUpdateTimeout)
	defer cancel()
	h, err := s.temporal.UpdateWorkflow(ctx, client.UpdateWorkflowOptions{
		WorkflowID: run.WorkflowID, RunID: run.TemporalRunID, UpdateName: workflows.GreyControlUpdate,
		WaitForStage: client.WorkflowUpdateStageCompleted,
		Args:         []any{workflows.GreyControl{Action: action, By: actor(c), Reason: reason}},
	})
	if err == nil {
		err = h.Get(ctx, nil)
	}
	var (
		appErr  *temporal.ApplicationError
		nf      *serviceerror.NotFound
		timeout *client.WorkflowUpdateServiceTimeoutOrCanceledError
	)
	switch {
	case err == nil:
		return nil
	case errors.As(err, &appErr) && appErr.Type() == workflows.GreyControlRefused:
		return &berth.Error{Code: berth.EConflict, Message: appErr.Message()}
	case errors.As(err, &appErr) && strings.HasPrefix(appErr.Message(), "unknown update"):
		// The SDK's own rejection when the run registered no handler.
		return s.sendGrey(c, action, reason)
	case errors.As(err, &nf):
		return &berth.Error{Code: berth.EConflict, Message: fmt.Sprintf("grey release of %s has ended", sc.Service.Name)}
	case errors.As(err, &timeout) || errors.Is(err, context.DeadlineExceeded):
		// An update is durable only once the workflow accepts it; one not
		// yet taken may still be, if a worker comes back soon.
		return &berth.Error{Code: berth.EUnavailable, Message: fmt.Sprintf(
			"the grey release of %s did not take %s within %s: is a worker running? Check its state before trying again", sc.Service.Name, action, greyUpdateTimeout)}
	}
	return err
}

// greyRelease finds the service's latest grey release and its run from the
// store alone; the workflow itself is asked by whoever calls.
func (s *Server) greyRelease(c *gin.Context, sc *store.ServiceContext) (*store.Release, *store.Run, error) {
	ctx := c.Request.Context()
	rels, _, err := s.store.Releases(ctx, sc.Service.ID)
	if err != nil {
		return nil, nil, err
	}
	for i := range rels {
		if rels[i].Strategy == berth.StrategyGrey {
			run, err := s.store.Run(ctx, rels[i].RunID)
			return &rels[i], run, err
		}
	}
	return nil, nil, &berth.Error{Code: berth.ENotFound, Message: "service " + sc.Service.Name + " has had no grey release"}
}

// sendGrey signals a grey release started before GreyControlUpdate, after
// checking it can take the action now: a finished release, or one already
// promoting or aborting, answers 409. Such a run checks again and drops
// what it cannot take; the signal cannot say so.
func (s *Server) sendGrey(c *gin.Context, action, reason string) error {
	sc, err := s.serviceContext(c)
	if err != nil {
		return err
	}
	v, run, err := s.greyOf(c, sc)
	if err != nil {
		return err
	}
	if !v.Active {
		return &berth.Error{Code: berth.EConflict, Message: fmt.Sprintf("grey release of %s has ended (run %d is %s)", sc.Service.Name, run.ID, run.Status)}
	}
	if v.State != nil {
		switch v.State.Phase {
		case workflows.GreyPhasePromoting, workflows.GreyPhaseAborting, workflows.GreyPhaseDone:
			return &berth.Error{Code: berth.EConflict, Message: fmt.Sprintf("grey release of %s is %s: it no longer takes %s", sc.Service.Name, v.State.Phase, action)}
		}
		if action == workflows.GreyPromote && v.State.AwaitingApproval {
			return &berth.Error{Code: berth.EConflict, Message: "grey release of " + sc.Service.Name + " waits for an approval: it is decided in the inbox, and promote cannot skip it (abort can)"}
		}
		if action == workflows.GreyResume && !v.State.Paused {
			return &berth.Error{Code: berth.EConflict, Message: "grey release of " + sc.Service.Name + " is not paused"}
		}
	}
	c.Set("berth.audit", fmt.Sprintf("grey %s of run %d: %s", action, run.ID, reason))
	err = s.temporal.SignalWorkflow(c.Request.Context(), run.WorkflowID, run.TemporalRunID, workflows.GreyControlSignal,
		workflows.GreyControl{Action: action, By: actor(c), Reason: reason})
	var nf *serviceerror.NotFound
	if errors.As(err, &nf) {
		return &berth.Error{Code: berth.EConflict, Message: fmt.Sprintf("grey release of %s has ended", sc.Service.Name)}
	}
	return err
}
