package server

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"strconv"

	"github.com/berth-dev/berth"
	"github.com/gin-gonic/gin"
	yaml "go.yaml.in/yaml/v3"
)

// cloneRequest clones a service as a new application for testing in
// isolation: the same spec, optionally another image, replica count or
// environment of the same tenant.
type cloneRequest struct {
	Name        string `json:"name"`                  // the new application's name
	Environment string `json:"environment,omitempty"` // default: the service's own
	Image       string `json:"image,omitempty"`       // default: the image the service runs now
	Replicas    int    `json:"replicas,omitempty"`    // default: the service's count
}

// cloneService deploys a copy of a service as a one-service application.
// The copy is cut from the application's compose file (so it is validated
// again like any deploy) with dependencies dropped, since the clone runs
// alone; it is then deployed through the ordinary deploy path.
func (s *Server) cloneService(c *gin.Context) {
	var req cloneRequest
	if err := bind(c, &req); err != nil {
		s.fail(c, err)
		return
	}
	if err := checkName("application", req.Name); err != nil {
		s.fail(c, err)
		return
	}
	if req.Image != "" && (!imageRE.MatchString(req.Image) || len(req.Image) > 255) {
		s.fail(c, badRequest("image must be an image reference such as registry.local/team/web:1.4.2"))
		return
	}
	if req.Replicas < 0 || req.Replicas > 100 {
		s.fail(c, badRequest("replicas must be 0..100 (0: the service's count)"))
		return
	}
	sc, err := s.serviceContext(c)
	if err != nil {
		s.fail(c, err)
		return
	}
	env := sc.Environment.Name
	if req.Environment != "" {
		if err := checkName("environment", req.Environment); err != nil {
			s.fail(c, err)
			return
		}
		// Only within the tenant: the caller's role was checked on it.
		if _, err := s.store.Environment(c.Request.Context(), sc.Tenant.Name, req.Environment); err != nil {
			s.fail(c, err)
			return
		}
		env = req.Environment
	}
	image := req.Image
	if image == "" {
		image = sc.Service.Image
	}
	replicas := req.Replicas
	if replicas == 0 {
		replicas = max(sc.Service.Replicas, 1)
	}
	doc, err := cloneCompose([]byte(sc.Application.Compose), sc.Service.Name, image, replicas)
	if err != nil {
		s.fail(c, err)
		return
	}
	body, err := json.Marshal(deployRequest{Name: req.Name, Compose: string(doc)})
	if err != nil {
		s.fail(c, err)
		return
	}
	c.Set("berth.audit", "clone of service "+strconv.FormatUint(uint64(sc.Service.ID), 10)+" as "+env+"/"+req.Name)
	c.Set(cloneKey, fmt.Sprintf("clone %s/%s of %s/%s/%s (image %s, %d instances)", env, req.Name,
		sc.Tenant.Name, sc.Environment.Name, sc.Service.Name, image, replicas))
	c.Params = gin.Params{{Key: "tenant", Value: sc.Tenant.Name}, {Key: "env", Value: env}}
	c.Request.Body = io.NopCloser(bytes.NewReader(body))
	c.Request.Header.Set("Content-Type", "application/json")
	s.deployApplication(c)
}

// cloneKey marks, for deployApplication, a deploy that is a clone, with
// what the approval should say about it.
const cloneKey = "berth.clone"

// cloneCompose keeps one service of a compose document, with the image and
// replica count given and no depends_on or links, and the document's
// top-level volumes and networks the service may use.
func cloneCompose(raw []byte, service, image string, replicas int) ([]byte, error) {
	var doc map[string]any
	if err := yaml.Unmarshal(raw, &doc); err != nil {
		return nil, &berth.Error{Code: berth.EConflict, Message: "the application's compose file no longer parses: " + err.Error()}
	}
	services, _ := doc["services"].(map[string]any)
	svc, ok := services[service].(map[string]any)
	if !ok {
		return nil, &berth.Error{Code: berth.EConflict, Message: "service " + service + " is not in its application's compose file"}
	}
	delete(svc, "depends_on")
	delete(svc, "links")
	delete(svc, "container_name")
	svc["image"] = image
	dep, _ := svc["deploy"].(map[string]any)
	if dep == nil {
		dep = map[string]any{}
	}
	dep["replicas"] = replicas
	svc["deploy"] = dep
	out := map[string]any{"services": map[string]any{service: svc}}
	for _, k := range []string{"volumes", "networks"} {
		if v, ok := doc[k]; ok {
			out[k] = v
		}
	}
	return yaml.Marshal(out)
}
