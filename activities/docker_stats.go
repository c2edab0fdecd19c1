package activities

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"

	"github.com/berth-dev/berth"
	cerrdefs "github.com/containerd/errdefs"
	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/client"
)

// Reads of a running container's figures and output, for the service page.
// They run in the container's region like every other Docker call, so the
// API never talks to an engine itself.

// InstanceStats takes one sample from the engine. The engine takes two
// readings a second apart, so the CPU figure is a rate, not a counter.
func (d *Docker) InstanceStats(ctx context.Context, in berth.InstanceRef) (*berth.InstanceStats, error) {
	eng, err := d.engine(ctx, in.Host)
	if err != nil {
		return nil, err
	}
	res, err := eng.ContainerStats(ctx, in.Instance, client.ContainerStatsOptions{Stream: false, IncludePreviousSample: true})
	if err != nil {
		if cerrdefs.IsNotFound(err) {
			return nil, fail(berth.ENotFound, "instance %s has no container on host %s", in.Instance, in.Host.Name)
		}
		return nil, fmt.Errorf("stats of %s on host %s: %w", in.Instance, in.Host.Name, err)
	}
	defer res.Body.Close()
	var sr container.StatsResponse
	if err := json.NewDecoder(io.LimitReader(res.Body, 1<<20)).Decode(&sr); err != nil {
		return nil, fmt.Errorf("stats of %s on host %s: %w", in.Instance, in.Host.Name, err)
	}
	return statsOf(in, &sr), nil
}

func statsOf(in berth.InstanceRef, sr *container.StatsResponse) *berth.InstanceStats {
	out := &berth.InstanceStats{Instance: in.Instance, Host: in.Host.Name, At: sr.Read.UTC(), Pids: sr.PidsStats.Current,
		MemoryLimit: sr.MemoryStats.Limit}
	// A stopped container reports a zero read time and no figures.
	out.Running = !sr.Read.IsZero() && sr.Read.Year() > 1
	if !out.Running {
		out.At = time.Now().UTC()
	}
	cpu, pre := sr.CPUStats, sr.PreCPUStats
	if cpu.CPUUsage.TotalUsage > pre.CPUUsage.TotalUsage && cpu.SystemUsage > pre.SystemUsage {
		n := float64(cpu.OnlineCPUs)
		if n == 0 {
			n = float64(len(cpu.CPUUsage.PercpuUsage))
		}
		if n == 0 {
			n = 1
		}
		out.CPUPercent = float64(cpu.CPUUsage.TotalUsage-pre.CPUUsage.TotalUsage) / float64(cpu.SystemUsage-pre.SystemUsage) * n * 100
	}
	// As the docker CLI does: cgroup v1 counts the cache in usage
	// (total_inactive_file), v2 reports inactive_file.
	mem := sr.MemoryStats.Usage
	for _, k := range []string{"total_inactive_file", "inactive_file"} {
		if v, ok := sr.MemoryStats.Stats[k]; ok && v < mem {
			mem -= v
			break
		}
	}
	out.MemoryBytes = mem
	for _, n := range sr.Networks {
		out.NetRxBytes += n.RxBytes
		out.NetTxBytes += n.TxBytes
	}
	for _, e := range sr.BlkioStats.IoServiceBytesRecursive {
		switch strings.ToLower(e.Op) {
		case "read":
			out.BlockReadBytes += e.Value
		case "write":
			out.BlockWriteBytes += e.Value
		}
	}
	return out
}

// Limits of one log read: a page polls often, so each answer stays small.
const (
	MaxLogBytes    = 256 << 10
	maxLogLineSize = 4 << 10
	// maxLogRead bounds what is read from the engine for one answer.
	maxLogRead = 16 << 20
)

// InstanceLogsInput asks for the last Tail lines of a container's output,
// only those written after Since when it is set.
type InstanceLogsInput struct {
	berth.InstanceRef
	Tail  int       `json:"tail"`
	Since time.Time `json:"since,omitempty"`
}

// InstanceLogs reads the tail of a container's stdout and stderr.
func (d *Docker) InstanceLogs(ctx context.Context, in InstanceLogsInput) (*berth.InstanceLogs, error) {
	if in.Tail <= 0 || in.Tail > berth.MaxLogLines {
		in.Tail = berth.MaxLogLines
	}
	eng, err := d.engine(ctx, in.Host)
	if err != nil {
		return nil, err
	}
	opts := client.ContainerLogsOptions{ShowStdout: true, ShowStderr: true, Timestamps: true, Tail: strconv.Itoa(in.Tail)}
	if !in.Since.IsZero() {
		opts.Since = in.Since.UTC().Format(time.RFC3339Nano)
	}
	rc, err := eng.ContainerLogs(ctx, in.Instance, opts)
	if err != nil {
		if cerrdefs.IsNotFound(err) {
			return nil, fail(berth.ENotFound, "instance %s has no container on host %s", in.Instance, in.Host.Name)
		}
		return nil, fmt.Errorf("logs of %s on host %s: %w", in.Instance, in.Host.Name, err)
	}
	defer rc.Close()
	out := &berth.InstanceLogs{Instance: in.Instance, Host: in.Host.Name, Lines: []berth.LogLine{}}
	lines, truncated, err := readLogLines(io.LimitReader(rc, maxLogRead))
	if err != nil {
		return nil, fmt.Errorf("logs of %s on host %s: %w", in.Instance, in.Host.Name, err)
	}
	out.Truncated = truncated
	size := 0
	// Keep the newest lines that fit; the engine gives at most Tail of them.
	for i := len(lines) - 1; i >= 0; i-- {
		l := lines[i]
		if !in.Since.IsZero() && !l.At.After(in.Since) {
			continue // the engine's since is inclusive; the caller has this one
		}
		if size+len(l.Text) > MaxLogBytes {
			out.Truncated = true
			break
		}
		size += len(l.Text)
		out.Lines = append(out.Lines, l)
	}
	for i, j := 0, len(out.Lines)-1; i < j; i, j = i+1, j-1 {
		out.Lines[i], out.Lines[j] = out.Lines[j], out.Lines[i]
	}
	return out, nil
}

// readLogLines reads the engine's log stream: frames of an 8-byte header
// (stream, 0, 0, 0, big-endian size) and the payload, as a container
// without a TTY writes them (berth gives none a TTY). Each line starts with
// its RFC 3339 timestamp. A stream that is not framed is read as plain text.
func readLogLines(r io.Reader) ([]berth.LogLine, bool, error) {
	br := bufio.NewReaderSize(r, 32<<10)
	var lines []berth.LogLine
	truncated := false
	partial := map[string]*bytes.Buffer{"stdout": {}, "stderr": {}}
	emit := func(stream string, b []byte) {
		l := parseLogLine(stream, b)
		if len(l.Text) > maxLogLineSize {
			l.Text = l.Text[:maxLogLineSize] + " …"
			truncated = true
		}
		lines = append(lines, l)
	}
	head, err := br.Peek(8)
	framed := err == nil && (head[0] == 1 || head[0] == 2) && head[1] == 0 && head[2] == 0 && head[3] == 0
	if !framed {
		data, err := io.ReadAll(br)
		if err != nil {
			return nil, false, err
		}
		for _, l := range bytes.Split(bytes.TrimRight(data, "\n"), []byte("\n")) {
			if len(l) > 0 {
				emit("stdout", l)
			}
		}
		return lines, truncated, nil
	}
	hdr := make([]byte, 8)
	for {
		if _, err := io.ReadFull(br, hdr); err != nil {
			if err == io.EOF || err == io.ErrUnexpectedEOF {
				break
			}
			return nil, false, err
		}
		stream := "stdout"
		if hdr[0] == 2 {
			stream = "stderr"
		}
		n := binary.BigEndian.Uint32(hdr[4:])
		buf := partial[stream]
		if _, err := io.CopyN(buf, br, int64(n)); err != nil {
			truncated = true
			break
		}
		for {
			i := bytes.IndexByte(buf.Bytes(), '\n')
			if i < 0 {
				break
			}
			emit(stream, buf.Next(i + 1)[:i])
		}
		if buf.Len() > maxLogRead/4 {
			emit(stream, buf.Bytes())
			buf.Reset()
		}
	}
	for _, stream := range []string{"stdout", "stderr"} {
		if b := partial[stream]; b.Len() > 0 {
			emit(stream, b.Bytes())
		}
	}
	return lines, truncated, nil
}

func parseLogLine(stream string, b []byte) berth.LogLine {
	s := strings.TrimRight(string(b), "\r")
	l := berth.LogLine{Stream: stream, Text: s}
	if ts, rest, ok := strings.Cut(s, " "); ok {
		if t, err := time.Parse(time.RFC3339Nano, ts); err == nil {
			l.At, l.Text = t.UTC(), rest
		}
	}
	return l
}
