package store

import (
	"context"
	"fmt"

	"gorm.io/gorm"
	"gorm.io/gorm/clause"

	"github.com/berth-dev/berth"
)

// ErrQuota says a plan would take a tenant or an environment past its quota.
var ErrQuota error = &berth.Error{Code: berth.ENoCapacity, Message: "quota exceeded"}

// usageSelect sums live instances' resources. Instances placed before
// log rotation was recorded run with the default rotation.
var usageSelect = "COUNT(*) AS instances, COALESCE(SUM(instances.res_memory_bytes),0) AS memory_bytes, " +
	"COALESCE(SUM(instances.res_nano_cpus),0) AS nano_cpus, COALESCE(SUM(instances.res_memory_reserved),0) AS memory_reserved, " +
	"COALESCE(SUM(instances.res_nano_cpus_reserved),0) AS nano_cpus_reserved, COALESCE(SUM(instances.res_volume_bytes),0) AS volume_bytes, " +
	fmt.Sprintf("COALESCE(SUM(CASE WHEN instances.res_log_bytes > 0 THEN instances.res_log_bytes ELSE %d END),0) AS log_bytes", berth.DefaultLogBytes)

type usageRow struct {
	Instances        int
	MemoryBytes      int64
	NanoCPUs         int64 `gorm:"column:nano_cpus"`
	MemoryReserved   int64
	NanoCPUsReserved int64 `gorm:"column:nano_cpus_reserved"`
	LogBytes         int64
	VolumeBytes      int64
}

func (u usageRow) usage() berth.Usage {
	return berth.Usage{Instances: u.Instances, Resources: berth.Resources{MemoryBytes: u.MemoryBytes, NanoCPUs: u.NanoCPUs,
		MemoryReserved: u.MemoryReserved, NanoCPUsReserved: u.NanoCPUsReserved, LogBytes: u.LogBytes, VolumeBytes: u.VolumeBytes}}
}

// liveInstances are the instances that still exist, joined up to their
// environment.
func liveInstances(tx *gorm.DB) *gorm.DB {
	return tx.Table("instances").
		Joins("JOIN services ON services.id = instances.service_id").
		Joins("JOIN applications ON applications.id = services.application_id").
		Joins("JOIN environments ON environments.id = applications.environment_id").
		Where("instances.removed_at IS NULL")
}

func sumUsage(q *gorm.DB) (berth.Usage, error) {
	var row usageRow
	err := q.Select(usageSelect).Scan(&row).Error
	return row.usage(), err
}

// quotaShort checks asked against the environment's and its tenant's
// quotas and says what is short ("" when it fits).
func quotaShort(tx *gorm.DB, env *Environment, tenant *Tenant, asked berth.Usage) (string, error) {
	envUsed, err := sumUsage(liveInstances(tx).Where("environments.id = ?", env.ID))
	if err != nil {
		return "", err
	}
	if short := env.Quota.Short(envUsed, asked); short != "" {
		return fmt.Sprintf("environment %s's quota: %s", env.Name, short), nil
	}
	tenantUsed, err := sumUsage(liveInstances(tx).Where("environments.tenant_id = ?", tenant.ID))
	if err != nil {
		return "", err
	}
	if short := tenant.Quota.Short(tenantUsed, asked); short != "" {
		return fmt.Sprintf("tenant %s's quota: %s", tenant.Name, short), nil
	}
	return "", nil
}

// PackageRoom is the room left for uploaded packages under the package
// quotas of an environment and its tenant: Bytes is the tighter room, -1
// when neither bounds packages, and Why names that quota and its use.
type PackageRoom struct {
	Bytes int64
	Why   string
}

// PackageRoom reads the room an environment's next package upload has.
func (s *Store) PackageRoom(ctx context.Context, envID uint) (PackageRoom, error) {
	db := s.db.WithContext(ctx)
	var env Environment
	if err := db.First(&env, envID).Error; err != nil {
		return PackageRoom{}, notFound(err, fmt.Sprintf("environment %d", envID))
	}
	var tenant Tenant
	if err := db.First(&tenant, env.TenantID).Error; err != nil {
		return PackageRoom{}, err
	}
	tenantUsed, envUsed, err := s.PackageUsage(ctx, tenant.ID, env.ID)
	if err != nil {
		return PackageRoom{}, err
	}
	room := PackageRoom{Bytes: -1}
	for _, q := range packageScopes(&tenant, &env, tenantUsed, envUsed) {
		if r := q.quota.PackageRoom(q.used); r >= 0 && (room.Bytes < 0 || r < room.Bytes) {
			room = PackageRoom{Bytes: r, Why: fmt.Sprintf("%s's package quota: %s kept for its releases", q.what, q.quota.PackageText(q.used))}
		}
	}
	return room, nil
}

// packageScope is one package quota and what counts against it.
type packageScope struct {
	quota berth.Quota
	used  int64
	what  string
}

// packageScopes are the two package quotas an environment's uploads count
// against: its tenant's and its own.
func packageScopes(tenant *Tenant, env *Environment, tenantUsed, envUsed int64) []packageScope {
	return []packageScope{
		{tenant.Quota, tenantUsed, "tenant " + tenant.Name},
		{env.Quota, envUsed, "environment " + tenant.Name + "/" + env.Name},
	}
}

// checkQuota refuses, inside a plan's transaction, what would pass a quota.
// It locks the tenant's row first, so two plans of one tenant take turns
// and cannot both fit into the last free capacity.
func checkQuota(tx *gorm.DB, env *Environment, asked berth.Usage) error {
	var tenant Tenant
	if err := tx.Clauses(clause.Locking{Strength: "UPDATE"}).First(&tenant, env.TenantID).Error; err != nil {
		return err
	}
	short, err := quotaShort(tx, env, &tenant, asked)
	if err != nil {
		return err
	}
	if short != "" {
		return fmt.Errorf("%s: %w", short, ErrQuota)
	}
	return nil
}

// CheckQuota says, before a run starts, whether asked fits the
// environment's and its tenant's quotas: an error naming what is short, or
// nil. The plan checks again under a lock; this answers early.
func (s *Store) CheckQuota(ctx context.Context, envID uint, asked berth.Usage) error {
	db := s.db.WithContext(ctx)
	var env Environment
	if err := db.First(&env, envID).Error; err != nil {
		return notFound(err, fmt.Sprintf("environment %d", envID))
	}
	var tenant Tenant
	if err := db.First(&tenant, env.TenantID).Error; err != nil {
		return err
	}
	short, err := quotaShort(db, &env, &tenant, asked)
	if err != nil {
		return err
	}
	if short != "" {
		return &berth.Error{Code: berth.ENoCapacity, Reason: "quota", Message: short}
	}
	return nil
}

// hostRoom is what placement may still promise on each host: its
// allocatable capacity less its live instances' reservations. Hosts whose
// size is unknown are absent (no bound).
func hostRoom(tx *gorm.DB, hosts []Host) (map[uint]berth.Resources, error) {
	room := map[uint]berth.Resources{}
	for _, h := range hosts {
		if h.CPUs == 0 || h.MemoryBytes == 0 {
			continue
		}
		used, err := sumUsage(tx.Table("instances").Where("host_id = ? AND removed_at IS NULL", h.ID))
		if err != nil {
			return nil, err
		}
		a := berth.Allocatable(h.CPUs, h.MemoryBytes)
		room[h.ID] = berth.Resources{MemoryReserved: a.MemoryReserved - used.MemoryReserved,
			NanoCPUsReserved: a.NanoCPUsReserved - used.NanoCPUsReserved}
	}
	return room, nil
}

// fits says whether a host has room for one more instance reserving r.
func fits(room map[uint]berth.Resources, hostID uint, r berth.Resources) bool {
	left, bounded := room[hostID]
	return !bounded || (left.MemoryReserved >= r.MemoryReserved && left.NanoCPUsReserved >= r.NanoCPUsReserved)
}

// HostCapacity is one host's allocatable capacity and what its live
// instances take of it.
type HostCapacity struct {
	Host        string          `json:"host"`
	Region      string          `json:"region"`
	State       berth.HostState `json:"state"`
	Allocatable berth.Resources `json:"allocatable"`
	Used        berth.Usage     `json:"used"`
}

// EnvironmentCapacity is an environment's use against its quota.
type EnvironmentCapacity struct {
	Tenant      string      `json:"tenant"`
	Environment string      `json:"environment"`
	Quota       berth.Quota `json:"quota"`
	Used        berth.Usage `json:"used"`
	// PackageBytes is what the packages kept for its releases take.
	PackageBytes int64 `json:"packageBytes"`
	// VolumeBytes is what its named volumes held when last measured
	// (Used.VolumeBytes is what they reserve).
	VolumeBytes int64 `json:"volumeBytes"`
}

// TenantCapacity is a tenant's use against its quota.
type TenantCapacity struct {
	Tenant string      `json:"tenant"`
	Quota  berth.Quota `json:"quota"`
	Used   berth.Usage `json:"used"`
	// PackageBytes is what the packages kept for its releases take.
	PackageBytes int64 `json:"packageBytes"`
	// VolumeBytes is what its named volumes held when last measured.
	VolumeBytes int64 `json:"volumeBytes"`
}

// Capacity is used against allocatable per region's hosts, and against
// quotas per tenant and environment.
type Capacity struct {
	Hosts        []HostCapacity        `json:"hosts"`
	Tenants      []TenantCapacity      `json:"tenants"`
	Environments []EnvironmentCapacity `json:"environments"`
}

// Capacity reads what is used; tenantIDs narrows tenants and environments
// (nil: all), withHosts adds the hosts (platform readers only).
func (s *Store) Capacity(ctx context.Context, tenantIDs []uint, withHosts bool) (*Capacity, error) {
	db := s.db.WithContext(ctx)
	out := &Capacity{Hosts: []HostCapacity{}, Tenants: []TenantCapacity{}, Environments: []EnvironmentCapacity{}}
	if withHosts {
		var hosts []Host
		if err := db.Order("region, name").Find(&hosts).Error; err != nil {
			return nil, err
		}
		for _, h := range hosts {
			used, err := sumUsage(db.Table("instances").Where("host_id = ? AND removed_at IS NULL", h.ID))
			if err != nil {
				return nil, err
			}
			a := berth.Allocatable(h.CPUs, h.MemoryBytes)
			a.MemoryBytes, a.NanoCPUs = a.MemoryReserved, a.NanoCPUsReserved
			out.Hosts = append(out.Hosts, HostCapacity{Host: h.Name, Region: h.Region, State: h.State, Allocatable: a, Used: used})
		}
	}
	var tenants []Tenant
	q := db.Order("name")
	if tenantIDs != nil {
		q = q.Where("id IN ?", append(tenantIDs, 0))
	}
	if err := q.Find(&tenants).Error; err != nil {
		return nil, err
	}
	for _, t := range tenants {
		used, err := sumUsage(liveInstances(db).Where("environments.tenant_id = ?", t.ID))
		if err != nil {
			return nil, err
		}
		measured, err := measuredVolumeBytes(db, t.Name, "")
		if err != nil {
			return nil, err
		}
		out.Tenants = append(out.Tenants, TenantCapacity{Tenant: t.Name, Quota: t.Quota, Used: used, VolumeBytes: measured})
		var envs []Environment
		if err := db.Where("tenant_id = ?", t.ID).Order("name").Find(&envs).Error; err != nil {
			return nil, err
		}
		for _, e := range envs {
			used, err := sumUsage(liveInstances(db).Where("environments.id = ?", e.ID))
			if err != nil {
				return nil, err
			}
			tenantPackages, envPackages, err := s.PackageUsage(ctx, t.ID, e.ID)
			if err != nil {
				return nil, err
			}
			out.Tenants[len(out.Tenants)-1].PackageBytes = tenantPackages
			measured, err := measuredVolumeBytes(db, t.Name, e.Name)
			if err != nil {
				return nil, err
			}
			out.Environments = append(out.Environments, EnvironmentCapacity{Tenant: t.Name, Environment: e.Name, Quota: e.Quota, Used: used,
				PackageBytes: envPackages, VolumeBytes: measured})
		}
	}
	return out, nil
}

// SetTenantQuota sets a tenant's quota.
func (s *Store) SetTenantQuota(ctx context.Context, tenantID uint, q berth.Quota) error {
	return s.db.WithContext(ctx).Model(&Tenant{}).Where("id = ?", tenantID).Select("quota_max_memory_bytes", "quota_max_nano_cpus", "quota_max_instances", "quota_max_package_bytes", "quota_max_log_bytes", "quota_max_volume_bytes").
		Updates(&Tenant{Quota: q}).Error
}

// SetEnvironmentQuota sets an environment's quota.
func (s *Store) SetEnvironmentQuota(ctx context.Context, envID uint, q berth.Quota) error {
	return s.db.WithContext(ctx).Model(&Environment{}).Where("id = ?", envID).Select("quota_max_memory_bytes", "quota_max_nano_cpus", "quota_max_instances", "quota_max_package_bytes", "quota_max_log_bytes", "quota_max_volume_bytes").
		Updates(&Environment{Quota: q}).Error
}
