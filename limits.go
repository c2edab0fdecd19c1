package berth

import "fmt"

// Limits are an environment's resource policy: defaults for services whose
// file sets none, and maximums no service may exceed. Zero means no default
// (or no maximum).
type Limits struct {
	DefaultMemoryBytes int64 `json:"defaultMemoryBytes,omitempty"`
	DefaultNanoCPUs    int64 `json:"defaultNanoCPUs,omitempty"`
	DefaultPids        int64 `json:"defaultPids,omitempty"`
	MaxMemoryBytes     int64 `json:"maxMemoryBytes,omitempty"`
	MaxNanoCPUs        int64 `json:"maxNanoCPUs,omitempty"`
	MaxPids            int64 `json:"maxPids,omitempty"`
}

// Check says what is wrong with a policy itself.
func (l Limits) Check() error {
	for _, v := range []int64{l.DefaultMemoryBytes, l.DefaultNanoCPUs, l.DefaultPids, l.MaxMemoryBytes, l.MaxNanoCPUs, l.MaxPids} {
		if v < 0 {
			return fmt.Errorf("limits must not be negative")
		}
	}
	for _, p := range []struct {
		what     string
		def, max int64
	}{{"memory", l.DefaultMemoryBytes, l.MaxMemoryBytes}, {"cpus", l.DefaultNanoCPUs, l.MaxNanoCPUs}, {"pids", l.DefaultPids, l.MaxPids}} {
		if p.max > 0 && p.def > p.max {
			return fmt.Errorf("the default %s limit is above the maximum", p.what)
		}
	}
	if l.DefaultMemoryBytes > 0 && l.DefaultMemoryBytes < 6<<20 {
		// The engine refuses a memory limit under 6 MiB at create time.
		return fmt.Errorf("a memory limit below 6 MiB cannot start a container")
	}
	return nil
}
