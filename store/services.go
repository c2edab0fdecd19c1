package store

import (
	"context"
	"encoding/json"
	"fmt"
	"gorm.io/gorm"
	"sort"

	"github.com/berth-dev/berth"
)

// ServiceView is the service page of MISSION.md: the cluster and its instances.
type ServiceView struct {
	Service
	Application string         `json:"application"`
	Instances   []InstanceView `json:"instances"`
}

// InstanceView is one instance as users see it.
type InstanceView struct {
	Instance
	Host     string              `json:"host"`
	Region   string              `json:"region"`
	Ports    []berth.PortMapping `json:"ports"`
	Mappings []string            `json:"mappings"` // "hostIP:hostPort → containerPort/proto"
}

// Services returns an application's services with their live instances.
func (s *Store) Services(ctx context.Context, appID uint) ([]ServiceView, error) {
	var svcs []Service
	if err := s.db.WithContext(ctx).Where("application_id = ?", appID).Order("id").Find(&svcs).Error; err != nil {
		return nil, err
	}
	out := make([]ServiceView, 0, len(svcs))
	if len(svcs) == 0 {
		return out, nil
	}
	var app Application
	if err := s.db.WithContext(ctx).First(&app, appID).Error; err != nil {
		return nil, notFound(err, fmt.Sprintf("application %d", appID))
	}
	for _, svc := range svcs {
		// A service an update removed is history; a deleted application
		// still shows what it had.
		if svc.State == berth.StateDeleted && app.State != berth.StateDeleted {
			continue
		}
		v, err := s.serviceView(ctx, svc)
		if err != nil {
			return nil, err
		}
		out = append(out, *v)
	}
	return out, nil
}

// ServiceByID returns one service view.
func (s *Store) ServiceByID(ctx context.Context, id uint) (*ServiceView, error) {
	var svc Service
	if err := s.db.WithContext(ctx).First(&svc, id).Error; err != nil {
		return nil, notFound(err, fmt.Sprintf("service %d", id))
	}
	return s.serviceView(ctx, svc)
}

func (s *Store) serviceView(ctx context.Context, svc Service) (*ServiceView, error) {
	var app Application
	if err := s.db.WithContext(ctx).First(&app, svc.ApplicationID).Error; err != nil {
		return nil, err
	}
	return s.viewOf(ctx, svc, app)
}

// ServiceViewOf is the view of a service whose context is already read.
func (s *Store) ServiceViewOf(ctx context.Context, sc *ServiceContext) (*ServiceView, error) {
	return s.viewOf(ctx, sc.Service, sc.Application)
}

func (s *Store) viewOf(ctx context.Context, svc Service, app Application) (*ServiceView, error) {
	var insts []Instance
	if err := s.db.WithContext(ctx).Where("service_id = ? AND removed_at IS NULL", svc.ID).Order("ordinal").Find(&insts).Error; err != nil {
		return nil, err
	}
	v := &ServiceView{Service: svc, Application: app.Name, Instances: []InstanceView{}}
	ids := make([]uint, 0, len(insts))
	for _, in := range insts {
		ids = append(ids, in.HostID)
	}
	var hosts []Host
	if len(ids) > 0 {
		if err := s.db.WithContext(ctx).Select("id", "name", "region").Where("id IN ?", ids).Find(&hosts).Error; err != nil {
			return nil, err
		}
	}
	byID := make(map[uint]Host, len(hosts))
	for _, h := range hosts {
		byID[h.ID] = h
	}
	for _, in := range insts {
		h := byID[in.HostID]
		iv := InstanceView{Instance: in, Host: h.Name, Region: h.Region, Ports: []berth.PortMapping{}, Mappings: []string{}}
		_ = json.Unmarshal([]byte(in.Ports), &iv.Ports)
		sort.Slice(iv.Ports, func(i, j int) bool { return iv.Ports[i].ContainerPort < iv.Ports[j].ContainerPort })
		for _, p := range iv.Ports {
			iv.Mappings = append(iv.Mappings, fmt.Sprintf("%s:%d → %d/%s", p.HostIP, p.HostPort, p.ContainerPort, p.Protocol))
		}
		v.Instances = append(v.Instances, iv)
	}
	return v, nil
}

// SetServiceReplicas records a service's replica count after a scale.
func (s *Store) SetServiceReplicas(ctx context.Context, serviceID uint, replicas int) error {
	return s.db.WithContext(ctx).Model(&Service{}).Where("id = ?", serviceID).Update("replicas", replicas).Error
}

// ServiceNamed returns an application's service by name.
func (s *Store) ServiceNamed(ctx context.Context, appID uint, name string) (*Service, error) {
	var svc Service
	if err := s.db.WithContext(ctx).Where("application_id = ? AND name = ?", appID, name).First(&svc).Error; err != nil {
		return nil, notFound(err, fmt.Sprintf("service %q", name))
	}
	return &svc, nil
}

// ServiceRef returns an application's service by name, as the activities see it.
func (s *Store) ServiceRef(ctx context.Context, appID uint, name string) (*berth.ServiceRef, error) {
	svc, err := s.ServiceNamed(ctx, appID, name)
	if err != nil {
		return nil, err
	}
	return &berth.ServiceRef{ID: svc.ID, Name: svc.Name, Image: svc.Image, CreatedAt: svc.CreatedAt}, nil
}

// ServiceContext is a service with the application, environment and tenant it belongs to.
type ServiceContext struct {
	Service     Service
	Application Application
	Environment Environment
	Tenant      Tenant
}

// ServiceContextByID loads a service and everything above it.
func (s *Store) ServiceContextByID(ctx context.Context, id uint) (*ServiceContext, error) {
	return serviceContextTx(s.db.WithContext(ctx), id)
}

func serviceContextTx(db *gorm.DB, id uint) (*ServiceContext, error) {
	var sc ServiceContext
	if err := db.First(&sc.Service, id).Error; err != nil {
		return nil, notFound(err, fmt.Sprintf("service %d", id))
	}
	if err := db.First(&sc.Application, sc.Service.ApplicationID).Error; err != nil {
		return nil, err
	}
	if err := db.First(&sc.Environment, sc.Application.EnvironmentID).Error; err != nil {
		return nil, err
	}
	if err := db.First(&sc.Tenant, sc.Environment.TenantID).Error; err != nil {
		return nil, err
	}
	return &sc, nil
}
