package compose

import "github.com/berth-dev/berth"

// ApplyLimits fills in the environment's defaults where the file set no
// limit, and refuses, naming each service and limit, what is over a maximum.
// A service may not lift a limit the environment bounds (pids -1, or no
// memory limit, when there is a maximum).
func ApplyLimits(spec *Spec, l berth.Limits) error {
	var probs problems
	for i := range spec.Services {
		s := &spec.Services[i]
		if s.MemoryBytes == 0 {
			s.MemoryBytes = l.DefaultMemoryBytes
		}
		if s.NanoCPUs == 0 {
			s.NanoCPUs = l.DefaultNanoCPUs
		}
		if s.PidsLimit == 0 {
			s.PidsLimit = l.DefaultPids
		}
		if l.MaxMemoryBytes > 0 && (s.MemoryBytes == 0 || s.MemoryBytes > l.MaxMemoryBytes) {
			probs.svc(s.Name, "memory limit %s is over this environment's maximum of %s", berth.BytesText(s.MemoryBytes), berth.BytesText(l.MaxMemoryBytes))
		}
		if l.MaxNanoCPUs > 0 && (s.NanoCPUs == 0 || s.NanoCPUs > l.MaxNanoCPUs) {
			probs.svc(s.Name, "cpus limit %s is over this environment's maximum of %s", berth.CPUsText(s.NanoCPUs), berth.CPUsText(l.MaxNanoCPUs))
		}
		if l.MaxPids > 0 && (s.PidsLimit <= 0 || s.PidsLimit > l.MaxPids) {
			probs.svc(s.Name, "pids limit %s is over this environment's maximum of %d", berth.PidsText(s.PidsLimit), l.MaxPids)
		}
		if s.MemoryBytes > 0 && s.MemoryReservation > s.MemoryBytes {
			probs.svc(s.Name, "memory reservation %s is above its memory limit %s", berth.BytesText(s.MemoryReservation), berth.BytesText(s.MemoryBytes))
		}
	}
	if len(probs) > 0 {
		return &ValidationError{Problems: probs}
	}
	return nil
}

// Resources is what each instance of the service takes.
func (s ServiceSpec) Resources() berth.Resources {
	return berth.Resources{MemoryBytes: s.MemoryBytes, NanoCPUs: s.NanoCPUs, MemoryReserved: s.MemoryReservation,
		NanoCPUsReserved: s.NanoCPUsReserved, LogBytes: s.LogBytes(), VolumeBytes: s.VolumeBytes()}
}

// VolumeBytes is the declared size of the named volumes an instance
// mounts, each once.
func (s ServiceSpec) VolumeBytes() int64 {
	var n int64
	seen := map[string]bool{}
	for _, v := range s.Volumes {
		if v.Type != "volume" || seen[v.Source] {
			continue
		}
		seen[v.Source] = true
		n += v.Size()
	}
	return n
}

// Size is what a named volume counts as of the volume quotas.
func (v VolumeSpec) Size() int64 {
	if v.SizeBytes > 0 {
		return v.SizeBytes
	}
	return berth.DefaultVolumeBytes
}

// LogRotation is the engine's json-file rotation of an instance: the size
// of one file and how many are kept.
func (s ServiceSpec) LogRotation() (fileBytes int64, files int) {
	fileBytes, files = s.LogFileBytes, s.LogFiles
	if fileBytes == 0 {
		fileBytes = berth.DefaultLogFileBytes
	}
	if files == 0 {
		files = berth.DefaultLogFiles
	}
	return fileBytes, files
}

// LogBytes is the most the engine keeps of an instance's output.
func (s ServiceSpec) LogBytes() int64 {
	fileBytes, files := s.LogRotation()
	return fileBytes * int64(files)
}
