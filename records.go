package berth

import "time"

// The records below are kept so that every change to a load balancer, a
// firewall or the CMDB can be undone, reconciled and rebuilt. The store
// persists them as they are (its ORM reads the gorm tags; this package
// imports no ORM), and the activities read and write them through the
// store's small interfaces.

// LBPool is a service's load-balancer backend and the frontend clients use.
// It is kept as a record so every change can be undone and a restarted load
// balancer rebuilt from it.
type LBPool struct {
	ID         uint   `gorm:"primaryKey" json:"id"`
	ServiceID  uint   `gorm:"uniqueIndex" json:"serviceId"`
	Region     string `gorm:"size:64;uniqueIndex:ux_lb_region_port" json:"region"`
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

// CMDBRecord is one configuration item as berth last meant to push it to the
// enterprise CMDB, and how that went.
type CMDBRecord struct {
	CIID      string     `gorm:"primaryKey;size:191" json:"ciId"`
	Kind      string     `gorm:"size:16" json:"kind"` // service or instance
	Payload   string     `gorm:"type:text" json:"payload"`
	Deleted   bool       `json:"deleted"`
	State     SyncState  `gorm:"size:16;index" json:"state"` // pending, synced, failed
	Attempts  int        `json:"attempts"`
	LastError string     `gorm:"type:text" json:"lastError,omitempty"`
	SyncedAt  *time.Time `json:"syncedAt,omitempty"`
	UpdatedAt time.Time  `json:"updatedAt"`
}
