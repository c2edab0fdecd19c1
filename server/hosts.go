package server

import (
	"fmt"
	"net"
	"net/http"
	"path"
	"regexp"
	"strconv"

	"github.com/gin-gonic/gin"

	"github.com/berth-dev/berth"
	"github.com/berth-dev/berth/engine"
	"github.com/berth-dev/berth/store"
	"github.com/berth-dev/berth/workflows"
)

type hostRequest struct {
	Name       string `json:"name"`
	Region     string `json:"region"`
	Endpoint   string `json:"endpoint"`
	IP         string `json:"ip"`
	VolumeRoot string `json:"volumeRoot"`
	TLSCA      string `json:"tlsCA"`
	TLSCert    string `json:"tlsCert"`
	TLSKey     string `json:"tlsKey"`
}

var regionRE = regexp.MustCompile(`^[a-z0-9][a-z0-9-]{0,30}$`)

func (r *hostRequest) validate() error {
	if err := checkName("host", r.Name); err != nil {
		return err
	}
	if r.Region == "" {
		r.Region = "local"
	}
	if !regionRE.MatchString(r.Region) {
		return badRequest("region must be 1-31 characters of a-z, 0-9 and '-'")
	}
	if err := engine.CheckEndpoint(r.Endpoint, r.TLSCA, r.TLSCert, r.TLSKey); err != nil {
		return badRequest(err.Error())
	}
	if ip := net.ParseIP(r.IP); ip == nil || ip.IsUnspecified() {
		return badRequest("ip must be the address clients reach the host's published ports at")
	}
	if r.VolumeRoot == "" {
		r.VolumeRoot = "/var/lib/berth/volumes"
	}
	if !path.IsAbs(r.VolumeRoot) || path.Clean(r.VolumeRoot) != r.VolumeRoot || r.VolumeRoot == "/" {
		return badRequest("volumeRoot must be a clean absolute path other than /")
	}
	return nil
}

// createHost registers a host and starts its ProvisionHost run.
func (s *Server) createHost(c *gin.Context) {
	ctx := c.Request.Context()
	var req hostRequest
	if err := bindValid(c, &req); err != nil {
		s.fail(c, err)
		return
	}
	h := &store.Host{Name: req.Name, Region: req.Region, Endpoint: req.Endpoint, IP: req.IP, VolumeRoot: req.VolumeRoot,
		TLSCA: req.TLSCA, TLSCert: req.TLSCert, TLSKey: req.TLSKey}
	if err := s.store.CreateHost(ctx, h); err != nil {
		s.fail(c, err)
		return
	}
	started, err := s.provision(c, h)
	if err != nil {
		s.fail(c, err)
		return
	}
	c.JSON(http.StatusAccepted, gin.H{"host": h, "run": started})
}

func (s *Server) provision(c *gin.Context, h *store.Host) (*runStarted, error) {
	ctx := c.Request.Context()
	wfID := workflows.ProvisionHostID(h.Name)
	run := &store.Run{Kind: berth.KindProvisionHost, WorkflowID: wfID, HostID: h.ID, Subject: "host/" + h.Name, StartedBy: actor(c)}
	if err := s.store.CreateRun(ctx, run, wfID); err != nil {
		return nil, err
	}
	input := workflows.ProvisionHostInput{RunID: run.ID, Host: h.Ref()}
	if err := s.startRun(ctx, run, workflows.ProvisionHostName, input); err != nil {
		return nil, err
	}
	return &runStarted{RunID: run.ID, URL: runURL(run.ID), WorkflowID: wfID}, nil
}

func (s *Server) hostParam(c *gin.Context) (*store.Host, error) {
	ref := c.Param("host")
	if id, err := strconv.ParseUint(ref, 10, 32); err == nil {
		return s.store.Host(c.Request.Context(), uint(id))
	}
	return s.store.HostByName(c.Request.Context(), ref)
}

func (s *Server) listHosts(c *gin.Context) {
	hs, err := s.store.Hosts(c.Request.Context())
	if err != nil {
		s.fail(c, err)
		return
	}
	c.JSON(http.StatusOK, gin.H{"hosts": hs})
}

func (s *Server) getHost(c *gin.Context) {
	h, err := s.hostParam(c)
	if err != nil {
		s.fail(c, err)
		return
	}
	c.JSON(http.StatusOK, h)
}

// checkHost runs ProvisionHost again, e.g. after a host was down. A
// drained host is made schedulable by undrain, not by a check.
func (s *Server) checkHost(c *gin.Context) {
	h, err := s.hostParam(c)
	if err != nil {
		s.fail(c, err)
		return
	}
	if h.State == berth.HostDraining || h.State == berth.HostDrained {
		s.fail(c, &berth.Error{Code: berth.EConflict, Reason: "host_drained", Message: fmt.Sprintf(
			"host %s is %s; POST /api/v1/hosts/%s/undrain checks it and makes it schedulable again", h.Name, h.State, h.Name)})
		return
	}
	started, err := s.provision(c, h)
	if err != nil {
		s.fail(c, err)
		return
	}
	c.JSON(http.StatusAccepted, started)
}

// drainHost starts a DrainHost run: the host takes no new instance, and
// every instance on it moves to the environment's other ready hosts, one
// service at a time, each move under its application's lock.
func (s *Server) drainHost(c *gin.Context) {
	ctx := c.Request.Context()
	h, err := s.hostParam(c)
	if err != nil {
		s.fail(c, err)
		return
	}
	if h.State != berth.HostReady && h.State != berth.HostDraining {
		s.fail(c, &berth.Error{Code: berth.EConflict, Reason: "host_not_ready", Message: fmt.Sprintf(
			"host %s is %s; only a ready host (or one whose drain stopped) can be drained", h.Name, h.State)})
		return
	}
	run := &store.Run{Kind: berth.KindDrainHost, WorkflowID: workflows.DrainHostID(h.Name), HostID: h.ID, Subject: "host/" + h.Name,
		StartedBy: actor(c)}
	if err := s.store.CreateRun(ctx, run, workflows.HostLockKey(h.Name)); err != nil {
		s.fail(c, err)
		return
	}
	input := workflows.DrainHostInput{RunID: run.ID, Host: h.Ref(), StartedBy: actor(c), PortMin: s.cfg.PortMin, PortMax: s.cfg.PortMax,
		HealthTimeout: s.cfg.HealthTimeout, DrainTimeout: s.cfg.DrainTimeout}
	if err := s.startRun(ctx, run, workflows.DrainHostName, input); err != nil {
		s.fail(c, err)
		return
	}
	c.JSON(http.StatusAccepted, runStarted{RunID: run.ID, URL: runURL(run.ID), WorkflowID: run.WorkflowID})
}

// undrainHost makes a draining or drained host schedulable again: a check
// (ProvisionHost) probes its engine and marks it ready. A drain under way
// holds the host's lock, so the check is refused until it ends.
func (s *Server) undrainHost(c *gin.Context) {
	h, err := s.hostParam(c)
	if err != nil {
		s.fail(c, err)
		return
	}
	if h.State != berth.HostDraining && h.State != berth.HostDrained {
		s.fail(c, &berth.Error{Code: berth.EConflict, Reason: "host_not_drained", Message: fmt.Sprintf("host %s is %s, not draining or drained", h.Name, h.State)})
		return
	}
	started, err := s.provision(c, h)
	if err != nil {
		s.fail(c, err)
		return
	}
	c.JSON(http.StatusAccepted, started)
}

// regionLBRequest is where a region's load balancer takes clients.
type regionLBRequest struct {
	ListenIP string `json:"listenIP"`
	PortMin  int    `json:"portMin"`
	PortMax  int    `json:"portMax"`
}

func (r *regionLBRequest) validate() error {
	if ip := net.ParseIP(r.ListenIP); ip == nil {
		return badRequest("listenIP must be the address the region's load balancer takes clients on")
	}
	if r.PortMin < 1024 || r.PortMax > 65535 || r.PortMin > r.PortMax {
		return badRequest("portMin and portMax must be a window within 1024-65535, portMin not above portMax")
	}
	return nil
}

func (s *Server) listRegions(c *gin.Context) {
	rs, err := s.store.Regions(c.Request.Context())
	if err != nil {
		s.fail(c, err)
		return
	}
	c.JSON(http.StatusOK, gin.H{"regions": rs})
}

// setRegionLB records a region's load-balancer address and port window,
// which its new pools are allocated from.
func (s *Server) setRegionLB(c *gin.Context) {
	name := c.Param("region")
	if !regionRE.MatchString(name) {
		s.fail(c, badRequest("region must be 1-31 characters of a-z, 0-9 and '-'"))
		return
	}
	var req regionLBRequest
	if err := bindValid(c, &req); err != nil {
		s.fail(c, err)
		return
	}
	r, err := s.store.SetRegionLB(c.Request.Context(), name, req.ListenIP, req.PortMin, req.PortMax)
	if err != nil {
		s.fail(c, err)
		return
	}
	c.JSON(http.StatusOK, r)
}
