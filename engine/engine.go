package engine

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/url"
	"sync"

	"github.com/moby/moby/client"

	"github.com/berth-dev/berth"
)

// Engine is the part of the moby client that berth uses.
type Engine interface {
	Ping(ctx context.Context, options client.PingOptions) (client.PingResult, error)
	Info(ctx context.Context, options client.InfoOptions) (client.SystemInfoResult, error)
	ServerVersion(ctx context.Context, options client.ServerVersionOptions) (client.ServerVersionResult, error)
	ImageInspect(ctx context.Context, image string, opts ...client.ImageInspectOption) (client.ImageInspectResult, error)
	ImagePull(ctx context.Context, ref string, options client.ImagePullOptions) (client.ImagePullResponse, error)
	ImageList(ctx context.Context, options client.ImageListOptions) (client.ImageListResult, error)
	ImageRemove(ctx context.Context, image string, options client.ImageRemoveOptions) (client.ImageRemoveResult, error)
	ImageTag(ctx context.Context, options client.ImageTagOptions) (client.ImageTagResult, error)
	ContainerCreate(ctx context.Context, options client.ContainerCreateOptions) (client.ContainerCreateResult, error)
	ContainerStart(ctx context.Context, id string, options client.ContainerStartOptions) (client.ContainerStartResult, error)
	ContainerStop(ctx context.Context, id string, options client.ContainerStopOptions) (client.ContainerStopResult, error)
	ContainerInspect(ctx context.Context, id string, options client.ContainerInspectOptions) (client.ContainerInspectResult, error)
	ContainerList(ctx context.Context, options client.ContainerListOptions) (client.ContainerListResult, error)
	ContainerRemove(ctx context.Context, id string, options client.ContainerRemoveOptions) (client.ContainerRemoveResult, error)
	ContainerRestart(ctx context.Context, id string, options client.ContainerRestartOptions) (client.ContainerRestartResult, error)
	CopyToContainer(ctx context.Context, id string, options client.CopyToContainerOptions) (client.CopyToContainerResult, error)
	NetworkInspect(ctx context.Context, id string, options client.NetworkInspectOptions) (client.NetworkInspectResult, error)
	NetworkCreate(ctx context.Context, name string, options client.NetworkCreateOptions) (client.NetworkCreateResult, error)
	NetworkList(ctx context.Context, options client.NetworkListOptions) (client.NetworkListResult, error)
	NetworkConnect(ctx context.Context, networkID string, options client.NetworkConnectOptions) (client.NetworkConnectResult, error)
	NetworkRemove(ctx context.Context, networkID string, options client.NetworkRemoveOptions) (client.NetworkRemoveResult, error)
	ImageBuild(ctx context.Context, buildContext io.Reader, options client.ImageBuildOptions) (client.ImageBuildResult, error)
	ImagePush(ctx context.Context, image string, options client.ImagePushOptions) (client.ImagePushResponse, error)
	ContainerCommit(ctx context.Context, id string, options client.ContainerCommitOptions) (client.ContainerCommitResult, error)
	ExecCreate(ctx context.Context, id string, options client.ExecCreateOptions) (client.ExecCreateResult, error)
	ExecAttach(ctx context.Context, execID string, options client.ExecAttachOptions) (client.ExecAttachResult, error)
	ExecInspect(ctx context.Context, execID string, options client.ExecInspectOptions) (client.ExecInspectResult, error)
	ExecResize(ctx context.Context, execID string, options client.ExecResizeOptions) (client.ExecResizeResult, error)
	CopyFromContainer(ctx context.Context, id string, options client.CopyFromContainerOptions) (client.CopyFromContainerResult, error)
	ContainerStats(ctx context.Context, id string, options client.ContainerStatsOptions) (client.ContainerStatsResult, error)
	ContainerLogs(ctx context.Context, id string, options client.ContainerLogsOptions) (client.ContainerLogsResult, error)
	VolumeCreate(ctx context.Context, options client.VolumeCreateOptions) (client.VolumeCreateResult, error)
	VolumeList(ctx context.Context, options client.VolumeListOptions) (client.VolumeListResult, error)
	VolumeRemove(ctx context.Context, volumeID string, options client.VolumeRemoveOptions) (client.VolumeRemoveResult, error)
	DiskUsage(ctx context.Context, options client.DiskUsageOptions) (client.DiskUsageResult, error)
}

// Engines hands out engine clients for hosts.
type Engines interface {
	Engine(ctx context.Context, h berth.HostRef) (Engine, error)
}

// EnginePool keeps one moby client per endpoint, so connections are reused
// across activities.
type EnginePool struct {
	mu      sync.Mutex
	clients map[string]*client.Client
}

// NewEnginePool returns an empty pool.
func NewEnginePool() *EnginePool { return &EnginePool{clients: map[string]*client.Client{}} }

// CheckEndpoint refuses endpoints berth will not talk to: plain TCP is only
// allowed on loopback, anything else needs TLS with client certificates.
func CheckEndpoint(endpoint, ca, cert, key string) error {
	u, err := url.Parse(endpoint)
	if err != nil {
		return fmt.Errorf("endpoint %q is not a URL: %v", endpoint, err)
	}
	switch u.Scheme {
	case "unix":
		if u.Path == "" {
			return fmt.Errorf("endpoint %q has no socket path", endpoint)
		}
		return nil
	case "tcp":
		host := u.Hostname()
		if host == "" || u.Port() == "" {
			return fmt.Errorf("endpoint %q needs host:port", endpoint)
		}
		if ca != "" && cert != "" && key != "" {
			return nil
		}
		if host == "localhost" {
			return nil
		}
		if ip := net.ParseIP(host); ip != nil && ip.IsLoopback() {
			return nil
		}
		return fmt.Errorf("endpoint %q is plain TCP off loopback, which needs TLS: give tlsCA, tlsCert and tlsKey (client certificates)", endpoint)
	}
	return fmt.Errorf("endpoint %q: scheme must be unix or tcp", endpoint)
}

// Engine returns the client for a host, creating it on first use.
func (p *EnginePool) Engine(_ context.Context, h berth.HostRef) (Engine, error) {
	if err := CheckEndpoint(h.Endpoint, h.TLSCA, h.TLSCert, h.TLSKey); err != nil {
		return nil, berth.Errorf(berth.EInvalid, "host %s: %v", h.Name, err)
	}
	key := h.Endpoint + "|" + h.TLSCA + "|" + h.TLSCert + "|" + h.TLSKey
	p.mu.Lock()
	defer p.mu.Unlock()
	if c, ok := p.clients[key]; ok {
		return c, nil
	}
	opts := []client.Opt{client.WithHost(h.Endpoint)}
	if h.TLSCA != "" {
		opts = append(opts, client.WithTLSClientConfig(h.TLSCA, h.TLSCert, h.TLSKey))
	}
	c, err := client.New(opts...)
	if err != nil {
		return nil, berth.Errorf(berth.EInvalid, "host %s: %v", h.Name, err)
	}
	p.clients[key] = c
	return c, nil
}

// Close closes every client.
func (p *EnginePool) Close() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for k, c := range p.clients {
		_ = c.Close()
		delete(p.clients, k)
	}
}
