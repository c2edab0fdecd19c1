package store

import (
	"context"
	"time"

	"github.com/berth-dev/berth"
)

// GridCell is one service in one environment as the environment × service
// grid shows it: the version it runs, its state, the application's last run
// (who, when, how it ended) and the approvals its runs wait on.
type GridCell struct {
	ServiceID     uint
	TenantID      uint
	Tenant        string
	EnvironmentID uint
	Environment   string
	Application   string
	Service       string
	Image         string
	Version       string
	State         string
	// The application's last run; zero when it has none.
	RunID     uint
	RunKind   berth.RunKind
	RunStatus berth.RunStatus
	By        string
	At        time.Time
	// Waiting counts open approvals on the application's runs; WaitingRunID is the oldest's run.
	Waiting      int
	WaitingRunID uint
}

// GridEnvironment is a column of the grid.
type GridEnvironment struct {
	ID       uint
	TenantID uint
	Tenant   string
	Name     string
}

// Grid returns the live services of the given tenants (nil: every tenant)
// with what the grid shows for each, and the tenants' environments. It
// makes four queries whatever the number of services.
func (s *Store) Grid(ctx context.Context, tenantIDs []uint) ([]GridCell, []GridEnvironment, error) {
	db := s.db.WithContext(ctx)
	envQ := db.Table("environments").Select("environments.id, environments.tenant_id, tenants.name AS tenant, environments.name").
		Joins("JOIN tenants ON tenants.id = environments.tenant_id")
	if tenantIDs != nil {
		envQ = envQ.Where("environments.tenant_id IN ?", tenantIDs)
	}
	var envs []GridEnvironment
	if err := envQ.Order("tenants.name, environments.name").Scan(&envs).Error; err != nil {
		return nil, nil, err
	}
	type row struct {
		ServiceID     uint
		Service       string
		Image         string
		State         string
		ApplicationID uint
		Application   string
		EnvironmentID uint
		Environment   string
		TenantID      uint
		Tenant        string
		Version       *string
	}
	q := db.Table("services").
		Select("services.id AS service_id, services.name AS service, services.image, services.state, " +
			"applications.id AS application_id, applications.name AS application, " +
			"environments.id AS environment_id, environments.name AS environment, " +
			"tenants.id AS tenant_id, tenants.name AS tenant, releases.version").
		Joins("JOIN applications ON applications.id = services.application_id").
		Joins("JOIN environments ON environments.id = applications.environment_id").
		Joins("JOIN tenants ON tenants.id = environments.tenant_id").
		Joins("LEFT JOIN service_releases ON service_releases.service_id = services.id").
		Joins("LEFT JOIN releases ON releases.id = service_releases.current_id").
		Where("services.deleted_at IS NULL AND applications.deleted_at IS NULL")
	if tenantIDs != nil {
		q = q.Where("environments.tenant_id IN ?", tenantIDs)
	}
	var rows []row
	if err := q.Order("tenants.name, applications.name, services.name, environments.name").Scan(&rows).Error; err != nil {
		return nil, nil, err
	}
	if len(rows) == 0 {
		return []GridCell{}, envs, nil
	}
	appIDs := []uint{}
	seen := map[uint]bool{}
	for _, r := range rows {
		if !seen[r.ApplicationID] {
			seen[r.ApplicationID] = true
			appIDs = append(appIDs, r.ApplicationID)
		}
	}
	// The last run of each application.
	var runs []Run
	last := db.Model(&Run{}).Select("MAX(id)").Where("application_id IN ?", appIDs).Group("application_id")
	if err := db.Select("id, kind, status, started_by, created_at, application_id").Where("id IN (?)", last).Find(&runs).Error; err != nil {
		return nil, nil, err
	}
	lastRun := map[uint]Run{}
	for _, r := range runs {
		lastRun[r.ApplicationID] = r
	}
	// Open approvals on each application's runs.
	type waiting struct {
		ApplicationID uint
		N             int
		RunID         uint
	}
	var ws []waiting
	if err := db.Table("approvals").Select("runs.application_id, COUNT(*) AS n, MIN(approvals.run_id) AS run_id").
		Joins("JOIN runs ON runs.id = approvals.run_id").
		Where("approvals.state IN ? AND runs.application_id IN ?", openApprovalStates, appIDs).
		Group("runs.application_id").Scan(&ws).Error; err != nil {
		return nil, nil, err
	}
	wait := map[uint]waiting{}
	for _, w := range ws {
		wait[w.ApplicationID] = w
	}
	out := make([]GridCell, 0, len(rows))
	for _, r := range rows {
		c := GridCell{ServiceID: r.ServiceID, TenantID: r.TenantID, Tenant: r.Tenant, EnvironmentID: r.EnvironmentID,
			Environment: r.Environment, Application: r.Application, Service: r.Service, Image: r.Image, State: r.State,
			Version: imageTag(r.Image)}
		if r.Version != nil && *r.Version != "" {
			c.Version = *r.Version
		}
		if run, ok := lastRun[r.ApplicationID]; ok {
			c.RunID, c.RunKind, c.RunStatus, c.By, c.At = run.ID, run.Kind, run.Status, run.StartedBy, run.CreatedAt
		}
		if w, ok := wait[r.ApplicationID]; ok {
			c.Waiting, c.WaitingRunID = w.N, w.RunID
		}
		out = append(out, c)
	}
	return out, envs, nil
}
