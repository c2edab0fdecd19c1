package activities

import (
	"bytes"
	"encoding/binary"
	"strings"
	"testing"
	"time"

	"github.com/berth-dev/berth"
	"github.com/moby/moby/api/types/container"
	"github.com/stretchr/testify/require"
)

func frame(stream byte, payload string) []byte {
	h := make([]byte, 8)
	h[0] = stream
	binary.BigEndian.PutUint32(h[4:], uint32(len(payload)))
	return append(h, payload...)
}

func TestReadLogLinesDemultiplexes(t *testing.T) {
	var b bytes.Buffer
	b.Write(frame(1, "2025-01-02T03:04:05.000000001Z sampleapp: listening on :8080\n"))
	b.Write(frame(2, "2025-01-02T03:04:06.5Z <b>oops</b>\n2025-01-02T03:04:07Z second"))
	b.Write(frame(2, " half\n"))
	b.Write(frame(1, "2025-01-02T03:04:08Z "+strings.Repeat("x", maxLogLineSize+10)+"\n"))
	lines, truncated, err := readLogLines(&b)
	require.NoError(t, err)
	require.True(t, truncated, "the long line was shortened")
	require.Len(t, lines, 4)
	require.Equal(t, berth.LogLine{At: time.Date(2025, 1, 2, 3, 4, 5, 1, time.UTC), Stream: "stdout", Text: "sampleapp: listening on :8080"}, lines[0])
	require.Equal(t, "stderr", lines[1].Stream)
	require.Equal(t, "<b>oops</b>", lines[1].Text)
	require.Equal(t, "second half", lines[2].Text, "a line split over frames is one line")
	require.Len(t, lines[3].Text, maxLogLineSize+len(" …"))
}

func TestReadLogLinesPlainText(t *testing.T) {
	lines, _, err := readLogLines(strings.NewReader("2025-01-02T03:04:05Z one\ntwo\n"))
	require.NoError(t, err)
	require.Len(t, lines, 2)
	require.Equal(t, "one", lines[0].Text)
	require.Equal(t, "two", lines[1].Text)
	require.True(t, lines[1].At.IsZero())
}

func TestStatsOf(t *testing.T) {
	sr := &container.StatsResponse{Read: time.Now()}
	sr.CPUStats.CPUUsage.TotalUsage, sr.PreCPUStats.CPUUsage.TotalUsage = 3e8, 1e8
	sr.CPUStats.SystemUsage, sr.PreCPUStats.SystemUsage = 5e9, 1e9
	sr.CPUStats.OnlineCPUs = 2
	sr.MemoryStats = container.MemoryStats{Usage: 10 << 20, Limit: 1 << 30, Stats: map[string]uint64{"inactive_file": 2 << 20}}
	sr.Networks = map[string]container.NetworkStats{"eth0": {RxBytes: 100, TxBytes: 50}, "eth1": {RxBytes: 1, TxBytes: 2}}
	sr.BlkioStats.IoServiceBytesRecursive = []container.BlkioStatEntry{{Op: "read", Value: 4096}, {Op: "Write", Value: 8192}, {Op: "sync", Value: 1}}
	st := statsOf(berth.InstanceRef{Host: berth.HostRef{Name: "h1"}, Instance: "web-1"}, sr)
	require.True(t, st.Running)
	require.InDelta(t, 10.0, st.CPUPercent, 0.001)
	require.Equal(t, uint64(8<<20), st.MemoryBytes, "the page cache is left out")
	require.Equal(t, uint64(101), st.NetRxBytes)
	require.Equal(t, uint64(52), st.NetTxBytes)
	require.Equal(t, uint64(4096), st.BlockReadBytes)
	require.Equal(t, uint64(8192), st.BlockWriteBytes)

	stopped := statsOf(berth.InstanceRef{Instance: "web-2"}, &container.StatsResponse{})
	require.False(t, stopped.Running)
	require.Zero(t, stopped.CPUPercent)
}
