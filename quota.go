package berth

import (
	"fmt"
	"strings"
)

// Resources is what one instance takes. Its limits count against its
// tenant's and environment's quotas (what it may use); its reservations
// count against a host's allocatable capacity (what placement promises it),
// as Docker Swarm schedules.
type Resources struct {
	MemoryBytes      int64 `json:"memoryBytes,omitempty"`
	NanoCPUs         int64 `json:"nanoCPUs,omitempty"`
	MemoryReserved   int64 `json:"memoryReserved,omitempty"`
	NanoCPUsReserved int64 `json:"nanoCPUsReserved,omitempty"`
	// LogBytes is the most the engine keeps of the instance's output: its
	// json-file size times its file count, rotated by the engine itself,
	// so it is a hard bound that counts against the log quotas before the
	// instance writes a line.
	LogBytes int64 `json:"logBytes,omitempty"`
	// VolumeBytes is the declared size of the named volumes the instance
	// mounts (DefaultVolumeBytes each when the file declares none): what
	// it reserves of the volume quotas before anything is written.
	VolumeBytes int64 `json:"volumeBytes,omitempty"`
}

// DefaultVolumeBytes is what a named volume without a declared size
// (driver_opts: size) counts as.
const DefaultVolumeBytes = 1 << 30

// Log rotation of an instance whose compose file sets none: three files
// of 10 MiB, which is also what the live log view reads back.
const (
	DefaultLogFileBytes = 10 << 20
	DefaultLogFiles     = 3
	DefaultLogBytes     = DefaultLogFileBytes * DefaultLogFiles
)

// Usage is what a set of instances takes together.
type Usage struct {
	Instances int `json:"instances"`
	Resources
}

// Add counts n more instances of r.
func (u Usage) Add(r Resources, n int) Usage {
	u.Instances += n
	u.MemoryBytes += r.MemoryBytes * int64(n)
	u.NanoCPUs += r.NanoCPUs * int64(n)
	u.MemoryReserved += r.MemoryReserved * int64(n)
	u.NanoCPUsReserved += r.NanoCPUsReserved * int64(n)
	u.LogBytes += r.LogBytes * int64(n)
	u.VolumeBytes += r.VolumeBytes * int64(n)
	return u
}

// Quota bounds what a tenant or an environment may take in all: the sum
// of its live instances' memory and CPU limits, and their number. Zero
// means no bound.
type Quota struct {
	MaxMemoryBytes int64 `json:"maxMemoryBytes,omitempty"`
	MaxNanoCPUs    int64 `json:"maxNanoCPUs,omitempty"`
	MaxInstances   int   `json:"maxInstances,omitempty"`
	// MaxPackageBytes bounds the uploaded packages kept for the releases
	// of the tenant (or the environment): each package once, at its
	// uploaded size. An upload that would pass it is refused as it
	// arrives, before it is stored.
	MaxPackageBytes int64 `json:"maxPackageBytes,omitempty"`
	// MaxLogBytes bounds the output the engines keep for the live
	// instances: the sum of their log rotation sizes (LogBytes), checked
	// before an instance is placed.
	MaxLogBytes int64 `json:"maxLogBytes,omitempty"`
	// MaxVolumeBytes bounds the declared sizes of the named volumes the
	// live instances mount, each instance counting every volume it
	// mounts. Hosts whose filesystem supports it (XFS with project quotas)
	// also hold each volume to its size; elsewhere a volume that passes
	// its size is found and reported.
	MaxVolumeBytes int64 `json:"maxVolumeBytes,omitempty"`
}

// Check says what is wrong with a quota itself.
func (q Quota) Check() error {
	if q.MaxMemoryBytes < 0 || q.MaxNanoCPUs < 0 || q.MaxInstances < 0 || q.MaxPackageBytes < 0 || q.MaxLogBytes < 0 || q.MaxVolumeBytes < 0 {
		return fmt.Errorf("a quota must not be negative")
	}
	return nil
}

// Short names each bound that used plus asked would pass, e.g. "memory:
// 1GiB asked, 3.5GiB of 4GiB in use"; "" when it all fits.
func (q Quota) Short(used, asked Usage) string {
	count := func(n int64) string { return fmt.Sprint(n) }
	var out []string
	for _, b := range []struct {
		what             string
		max, used, asked int64
		text             func(int64) string
	}{
		{"memory", q.MaxMemoryBytes, used.MemoryBytes, asked.MemoryBytes, BytesText},
		{"cpus", q.MaxNanoCPUs, used.NanoCPUs, asked.NanoCPUs, CPUsText},
		{"instances", int64(q.MaxInstances), int64(used.Instances), int64(asked.Instances), count},
		{"logs", q.MaxLogBytes, used.LogBytes, asked.LogBytes, BytesText},
		{"volumes", q.MaxVolumeBytes, used.VolumeBytes, asked.VolumeBytes, BytesText},
	} {
		if b.max > 0 && b.used+b.asked > b.max {
			out = append(out, fmt.Sprintf("%s: %s asked, %s of %s in use", b.what, amount(b.text, b.asked), amount(b.text, b.used), b.text(b.max)))
		}
	}
	return strings.Join(out, "; ")
}

// PackageRoom is how many more bytes of packages fit beside used ones;
// -1 when the quota has no such bound.
func (q Quota) PackageRoom(used int64) int64 {
	if q.MaxPackageBytes == 0 {
		return -1
	}
	return max(q.MaxPackageBytes-used, 0)
}

// PackageText says how much of the package quota used takes, e.g. "337
// bytes of 1000 bytes".
func (q Quota) PackageText(used int64) string {
	return amount(BytesText, used) + " of " + BytesText(q.MaxPackageBytes)
}

// Allocatable is what placement may promise on a host with these facts:
// its CPUs and memory less a reserve for the engine and the system (a
// tenth, and at least 256 MiB of memory). Zero when the facts are unknown.
func Allocatable(cpus int, memoryBytes int64) Resources {
	mem := memoryBytes - max(memoryBytes/10, 256<<20)
	cpu := int64(cpus) * 1e9 * 9 / 10
	return Resources{MemoryReserved: max(mem, 0), NanoCPUsReserved: max(cpu, 0)}
}

// amount writes a quantity in use or asked for, where 0 is none, not the
// "unlimited" of a limit.
func amount(text func(int64) string, v int64) string {
	if v == 0 {
		return "0"
	}
	return text(v)
}
