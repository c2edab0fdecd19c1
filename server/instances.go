package server

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/gin-gonic/gin"
	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/sdk/temporal"

	"github.com/berth-dev/berth"
	"github.com/berth-dev/berth/logship"
	"github.com/berth-dev/berth/store"
	"github.com/berth-dev/berth/workflows"
)

// Live figures and output of one instance. The server never talks to a
// Docker engine: a short workflow runs the read on the instance's region's
// task queue, as the pool's live stats do.

// liveReadTimeout bounds one read end to end; the region's worker has 5 s to pick it up.
const liveReadTimeout = 20 * time.Second

// instanceRef finds the live instance in the path and its host.
func (s *Server) instanceRef(c *gin.Context) (berth.InstanceRef, error) {
	ctx := c.Request.Context()
	inst, err := s.store.LiveInstanceByName(ctx, c.Param("name"))
	if err != nil {
		return berth.InstanceRef{}, err
	}
	h, err := s.store.Host(ctx, inst.HostID)
	if err != nil {
		return berth.InstanceRef{}, err
	}
	return berth.InstanceRef{Host: h.Ref(), Instance: inst.Name}, nil
}

// liveReadError turns a failed read into what the user can act on.
func (s *Server) liveReadError(ctx context.Context, ref berth.InstanceRef, what string, err error) error {
	var te *temporal.TimeoutError
	var ae *temporal.ApplicationError
	region := ref.Host.Region
	switch {
	case errors.As(err, &te) && te.TimeoutType() == enumspb.TIMEOUT_TYPE_SCHEDULE_TO_START:
		return &berth.Error{Code: berth.EUnavailable, Reason: "region_unavailable", Message: fmt.Sprintf(
			"the worker for region %s does not answer: start a berth worker serving region %s (BERTH_REGIONS=%s), then try again", region, region, region)}
	case errors.As(err, &ae) && (ae.Type() == string(berth.ENotImplemented) || ae.Type() == string(berth.EInvalid)):
		return &berth.Error{Code: berth.Code(ae.Type()), Message: ae.Message()}
	case errors.As(err, &ae) && ae.Type() == string(berth.ENotFound):
		return &berth.Error{Code: berth.ENotFound, Message: fmt.Sprintf(
			"instance %s has no container on host %s any more; the service page shows its instances now", ref.Instance, ref.Host.Name)}
	case errors.Is(err, context.DeadlineExceeded) || ctx.Err() != nil:
		return &berth.Error{Code: berth.ETimeout, Reason: "region_timeout", Message: fmt.Sprintf(
			"the %s of %s did not come back from region %s within %s; try again", what, ref.Instance, region, liveReadTimeout)}
	}
	s.log.Warn("live read failed", "instance", ref.Instance, "host", ref.Host.Name, "what", what, "error", err)
	return &berth.Error{Code: berth.EUpstream, Reason: "engine_unavailable", Message: fmt.Sprintf(
		"the Docker engine of host %s did not give the %s of %s; check that the host is up (Hosts page), then try again", ref.Host.Name, what, ref.Instance)}
}

// instanceStats: GET /api/v1/instances/:name/stats, one sample of CPU,
// memory, network and block I/O.
func (s *Server) instanceStats(c *gin.Context) {
	ref, err := s.instanceRef(c)
	if err != nil {
		s.fail(c, err)
		return
	}
	ctx, cancel := contextWithTimeout(c.Request.Context(), liveReadTimeout)
	defer cancel()
	var res workflows.InstanceStatsResult
	if err := s.readThroughWorker(ctx, workflows.InstanceStatsID(ref.Instance), workflows.InstanceStatsName,
		workflows.InstanceStatsInput{Instance: ref}, &res); err != nil {
		s.fail(c, s.liveReadError(ctx, ref, "stats", err))
		return
	}
	c.Header("Cache-Control", "no-store")
	c.JSON(http.StatusOK, res.Stats)
}

// instanceLogs: GET /api/v1/instances/:name/logs?tail=100&since=RFC3339,
// the last lines the instance wrote (after since), oldest first. Poll with
// since set to the answer's "next" for a live tail.
func (s *Server) instanceLogs(c *gin.Context) {
	tail := 100
	if v := c.Query("tail"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > berth.MaxLogLines {
			s.fail(c, badRequest(fmt.Sprintf("tail must be a number from 1 to %d", berth.MaxLogLines)))
			return
		}
		tail = n
	}
	var since time.Time
	if v := c.Query("since"); v != "" {
		t, err := time.Parse(time.RFC3339Nano, v)
		if err != nil {
			s.fail(c, badRequest("since must be an RFC 3339 time, e.g. 2025-01-02T15:04:05.123Z"))
			return
		}
		since = t.UTC()
	}
	ref, err := s.instanceRef(c)
	if err != nil {
		s.fail(c, err)
		return
	}
	ctx, cancel := contextWithTimeout(c.Request.Context(), liveReadTimeout)
	defer cancel()
	var res workflows.InstanceLogsResult
	if err := s.readThroughWorker(ctx, workflows.InstanceLogsID(ref.Instance, tail, since), workflows.InstanceLogsName,
		workflows.InstanceLogsInput{Instance: ref, Tail: tail, Since: since}, &res); err != nil {
		s.fail(c, s.liveReadError(ctx, ref, "logs", err))
		return
	}
	next := since
	if n := len(res.Logs.Lines); n > 0 && res.Logs.Lines[n-1].At.After(next) {
		next = res.Logs.Lines[n-1].At
	}
	out := gin.H{"instance": res.Logs.Instance, "host": res.Logs.Host, "lines": res.Logs.Lines, "truncated": res.Logs.Truncated}
	if !next.IsZero() {
		out["next"] = next.Format(time.RFC3339Nano)
	}
	c.Header("Cache-Control", "no-store")
	c.JSON(http.StatusOK, out)
}

// Bounds of a search of shipped logs: a window of at most a day, a text of
// at most 200 bytes.
const (
	maxSearchMinutes = 24 * 60
	maxSearchQuery   = 200
)

// searchInstanceLogs searches the last minutes of what an instance shipped
// to its region's log archive, for lines that contain q: unlike the live
// tail, it reaches lines the host no longer keeps: those its log rotation
// dropped.
func (s *Server) searchInstanceLogs(c *gin.Context) {
	minutes, limit := 15, 200
	for _, p := range []struct {
		name string
		max  int
		to   *int
	}{{"minutes", maxSearchMinutes, &minutes}, {"limit", logship.MaxLines, &limit}} {
		if v := c.Query(p.name); v != "" {
			n, err := strconv.Atoi(v)
			if err != nil || n < 1 || n > p.max {
				s.fail(c, badRequest(fmt.Sprintf("%s must be a number from 1 to %d", p.name, p.max)))
				return
			}
			*p.to = n
		}
	}
	q := c.Query("q")
	if len(q) > maxSearchQuery || strings.ContainsAny(q, "\n\r") {
		s.fail(c, badRequest(fmt.Sprintf("q is one line of at most %d bytes", maxSearchQuery)))
		return
	}
	ref, err := s.instanceRef(c)
	if err != nil {
		s.fail(c, err)
		return
	}
	// The window starts on a whole second, so the same search asked again
	// within that second shares one read.
	since := time.Now().UTC().Add(-time.Duration(minutes) * time.Minute).Truncate(time.Second)
	ctx, cancel := contextWithTimeout(c.Request.Context(), liveReadTimeout)
	defer cancel()
	var res logship.SearchResult
	if err := s.readThroughWorker(ctx, workflows.SearchLogsID(ref.Instance, since, q, limit), workflows.SearchLogsName,
		workflows.SearchLogsInput{Instance: ref, Since: since, Query: q, Limit: limit}, &res); err != nil {
		s.fail(c, s.liveReadError(ctx, ref, "log search", err))
		return
	}
	if err := s.fillLogTags(c.Request.Context(), ref, res.Lines); err != nil {
		s.fail(c, err)
		return
	}
	c.Header("Cache-Control", "no-store")
	c.JSON(http.StatusOK, gin.H{"instance": ref.Instance, "host": ref.Host.Name, "since": since, "query": q,
		"lines": res.Lines, "truncated": res.Truncated, "scanned": res.Scanned})
}

// fillLogTags gives lines shipped from an application's log files (tagged
// by the host's shipper with the instance and file only) the instance's
// other tags, from berth's records.
func (s *Server) fillLogTags(ctx context.Context, ref berth.InstanceRef, lines []logship.Line) error {
	var sc *store.ServiceContext
	for i := range lines {
		if lines[i].Tags["tenant"] != "" {
			continue
		}
		if sc == nil {
			inst, err := s.store.LiveInstanceByName(ctx, ref.Instance)
			if err != nil {
				return err
			}
			if sc, err = s.store.ServiceContextByID(ctx, inst.ServiceID); err != nil {
				return err
			}
		}
		if lines[i].Tags == nil {
			lines[i].Tags = map[string]string{}
		}
		t := lines[i].Tags
		t["tenant"], t["env"], t["app"], t["service"], t["host"] = sc.Tenant.Name, sc.Environment.Name, sc.Application.Name, sc.Service.Name, ref.Host.Name
	}
	return nil
}
