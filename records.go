package berth

import (
	"encoding/json"
	"time"
)

// The records below are kept so that every change to a load balancer, a
// firewall or the CMDB can be undone, reconciled and rebuilt. The store
// persists them as they are (its ORM reads the gorm tags; this package
// imports no ORM), and the activities read and write them through the
// store's small interfaces.

// LBPool is a service's load-balancer backend in one region, and the
// frontend that region's clients use: a service whose environment spans
// regions has a pool in each, and each region's load balancer serves only
// the instances of its region. It is kept as a record so every change can
// be undone and a restarted load balancer rebuilt from it.
type LBPool struct {
	ID         uint   `gorm:"primaryKey" json:"id"`
	ServiceID  uint   `gorm:"uniqueIndex:ux_lb_service_region,priority:1" json:"serviceId"`
	Region     string `gorm:"size:64;uniqueIndex:ux_lb_region_port;uniqueIndex:ux_lb_service_region,priority:2" json:"region"`
	Backend    string `gorm:"size:191" json:"backend"`
	ListenIP   string `gorm:"size:64" json:"listenIP"`
	ListenPort int    `gorm:"uniqueIndex:ux_lb_region_port" json:"listenPort"`
	Mode       string `gorm:"size:8" json:"mode"`
	HealthPath string `gorm:"size:200" json:"healthPath,omitempty"`
	// Routes is the JSON of the pool's header and cookie routes (a grey
	// release's), kept so a restarted load balancer gets them back.
	Routes    string     `gorm:"type:text" json:"routes,omitempty"`
	CreatedAt time.Time  `json:"createdAt"`
	UpdatedAt time.Time  `json:"updatedAt"`
	Servers   []LBServer `gorm:"foreignKey:PoolID" json:"servers"`
}

// LBServer is one instance in a pool, with the weight and state berth wants.
type LBServer struct {
	ID           uint      `gorm:"primaryKey" json:"-"`
	PoolID       uint      `gorm:"index" json:"-"`
	InstanceName string    `gorm:"size:191;uniqueIndex" json:"name"`
	Addr         string    `gorm:"size:80" json:"addr"`
	Weight       int       `json:"weight"`
	State        string    `gorm:"size:16" json:"state"`
	UpdatedAt    time.Time `json:"updatedAt"`
}

// FirewallOpening is an opening berth asked for, with its driver's outcome.
type FirewallOpening struct {
	ID           uint         `gorm:"primaryKey" json:"-"`
	OpeningID    string       `gorm:"size:191;uniqueIndex" json:"id"`
	InstanceName string       `gorm:"size:191;index" json:"instance"`
	Protocol     string       `gorm:"size:8" json:"protocol"`
	DestIP       string       `gorm:"size:64" json:"destIP"`
	DestPort     int          `json:"destPort"`
	Source       string       `gorm:"size:64" json:"source,omitempty"`
	Driver       string       `gorm:"size:16" json:"driver"`
	State        OpeningState `gorm:"size:16;index" json:"state"` // requested, open, closed
	RunID        uint         `json:"runId"`
	OpenedAt     *time.Time   `json:"openedAt,omitempty"`
	ClosedAt     *time.Time   `json:"closedAt,omitempty"`
}

// RunEnd is a run that has just ended, as metrics count it.
type RunEnd struct {
	Kind   RunKind       `json:"kind"`
	Status RunStatus     `json:"status"`
	Took   time.Duration `json:"took"`
}

// RegionFirewall is what a region's firewall driver should hold, as the
// records say: the openings recorded open by the platform's driver for
// instances that still exist (Want), and the ids of every live opening of
// the region's instances, which may be being made (Keep). The reconciler
// compares it with the rules.
type RegionFirewall struct {
	Region string            `json:"region"`
	Want   []FirewallOpening `json:"want"`
	Keep   []string          `json:"keep"`
}

// CMDBRecord is one configuration item as berth last meant to push it to the
// enterprise CMDB, and how that went.
type CMDBRecord struct {
	CIID      string     `gorm:"primaryKey;size:191" json:"ciId"`
	Kind      string     `gorm:"size:16" json:"kind"`      // CITenant … CIHost
	Payload   string     `gorm:"type:text" json:"payload"` // a CIBody as JSON
	Deleted   bool       `json:"deleted"`
	State     SyncState  `gorm:"size:16;index" json:"state"` // pending, synced, failed
	Attempts  int        `json:"attempts"`
	LastError string     `gorm:"type:text" json:"lastError,omitempty"`
	SyncedAt  *time.Time `json:"syncedAt,omitempty"`
	UpdatedAt time.Time  `json:"updatedAt"`
}

// Kinds of configuration item berth keeps in the CMDB, from the top of the
// tree down; the CI id is the kind, a colon, and the item's path.
const (
	CITenant      = "tenant"
	CIEnvironment = "environment"
	CIApplication = "application"
	CIService     = "service"
	CIInstance    = "instance"
	CIHost        = "host"
)

// Relations between configuration items, read from the item that holds them.
const (
	RelPartOf   = "part-of"   // environment → tenant, application → environment, service → application
	RelMemberOf = "member-of" // instance → service
	RelRunsOn   = "runs-on"   // instance → host
)

// CIManagedBy is the attribute value that marks an item as berth's: a
// resync deletes only the items it marks, never another tool's.
const CIManagedBy = "berth"

// CIRelation points from one configuration item to another.
type CIRelation struct {
	Type   string `json:"type"`
	Target string `json:"target"`
}

// CIBody is what berth pushes for one configuration item, and what a
// CMDBRecord's payload holds.
type CIBody struct {
	Attributes map[string]string `json:"attributes"`
	Relations  []CIRelation      `json:"relations,omitempty"`
}

// CIID names a configuration item: kind and path ("service:t/e/a/web").
func CIID(kind, path string) string { return kind + ":" + path }

// CMDBDrift is what a resync found between berth's records and the CMDB,
// and what it did about it. The id lists are capped at MaxDriftIDs each;
// the counts are whole.
type CMDBDrift struct {
	Checked      int      `json:"checked"`      // items berth holds
	Held         int      `json:"held"`         // berth's items the CMDB held
	MissingCount int      `json:"missingCount"` // in berth, not in the CMDB: pushed
	ChangedCount int      `json:"changedCount"` // in both, different: pushed again
	ExtraCount   int      `json:"extraCount"`   // berth's mark, gone from berth: deleted
	Missing      []string `json:"missing,omitempty"`
	Changed      []string `json:"changed,omitempty"`
	Extra        []string `json:"extra,omitempty"`
	Failed       []string `json:"failed,omitempty"` // repairs the CMDB refused; the next resync tries again
}

// MaxDriftIDs caps each id list of a drift report, so a CMDB emptied by
// accident does not put thousands of ids into a workflow's history.
const MaxDriftIDs = 50

// CIScope narrows the configuration items the store computes for the CMDB.
type CIScope struct {
	// ApplicationID limits the items to one application's tree: its
	// tenant, environment, itself, its services, their live instances and
	// the hosts those run on. Zero means every item berth holds.
	ApplicationID uint `json:"applicationId,omitempty"`
	// Without leaves these instances out (they are being taken away).
	Without []string `json:"without,omitempty"`
}

// CITombstone is the record that deletes an item, saying when and by whom.
func CITombstone(id, kind, by string, at time.Time) CMDBRecord {
	b, _ := json.Marshal(CIBody{Attributes: map[string]string{"deleted": at.UTC().Format(time.RFC3339), "deletedBy": by}})
	return CMDBRecord{CIID: id, Kind: kind, Payload: string(b), Deleted: true}
}
