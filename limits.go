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

// BytesText writes a memory limit for people: 512MiB, 1GiB, unlimited.
func BytesText(b int64) string {
	switch {
	case b == 0:
		return "unlimited"
	case b%(1<<30) == 0:
		return fmt.Sprintf("%dGiB", b>>30)
	case b%(1<<20) == 0:
		return fmt.Sprintf("%dMiB", b>>20)
	}
	return fmt.Sprintf("%d bytes", b)
}

// CPUsText writes a CPU limit in CPUs.
func CPUsText(nano int64) string {
	if nano == 0 {
		return "unlimited"
	}
	return fmt.Sprintf("%g", float64(nano)/1e9)
}

// PidsText writes a pids limit.
func PidsText(p int64) string {
	if p <= 0 {
		return "unlimited"
	}
	return fmt.Sprint(p)
}

// DefaultsText is the defaults for people: "512MiB, 1 CPU, 512 pids".
func (l Limits) DefaultsText() string {
	return limitsText(l.DefaultMemoryBytes, l.DefaultNanoCPUs, l.DefaultPids)
}

// MaximumsText is the maximums for people.
func (l Limits) MaximumsText() string { return limitsText(l.MaxMemoryBytes, l.MaxNanoCPUs, l.MaxPids) }

func limitsText(mem, nano, pids int64) string {
	if mem == 0 && nano == 0 && pids == 0 {
		return "none"
	}
	return fmt.Sprintf("memory %s, cpus %s, pids %s", BytesText(mem), CPUsText(nano), PidsText(pids))
}
