package berth

import "time"

// Live reads of a running container, for the service page: a region's
// worker takes them and the API shows them.

// InstanceStats is one sample of a container's resource use. Network and
// block I/O are counters since the container started.
type InstanceStats struct {
	Instance   string    `json:"instance"`
	Host       string    `json:"host"`
	At         time.Time `json:"at"`
	Running    bool      `json:"running"`
	CPUPercent float64   `json:"cpuPercent"`
	// MemoryBytes is the usage without the page cache, as `docker stats` shows it.
	MemoryBytes     uint64 `json:"memoryBytes"`
	MemoryLimit     uint64 `json:"memoryLimit"`
	NetRxBytes      uint64 `json:"netRxBytes"`
	NetTxBytes      uint64 `json:"netTxBytes"`
	BlockReadBytes  uint64 `json:"blockReadBytes"`
	BlockWriteBytes uint64 `json:"blockWriteBytes"`
	Pids            uint64 `json:"pids"`
}

// LogLine is one line a container wrote.
type LogLine struct {
	At     time.Time `json:"at"`
	Stream string    `json:"stream"` // stdout or stderr
	Text   string    `json:"text"`
}

// InstanceLogs is a tail of a container's output, oldest line first.
// Truncated says lines were left out or shortened to keep within the limits.
type InstanceLogs struct {
	Instance  string    `json:"instance"`
	Host      string    `json:"host"`
	Lines     []LogLine `json:"lines"`
	Truncated bool      `json:"truncated,omitempty"`
}
