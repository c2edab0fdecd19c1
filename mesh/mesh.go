package mesh

import (
	"bufio"
	"context"
	"crypto/ed25519"
	"crypto/hmac"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/big"
	"net"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// GatewayPort is the container port a gateway takes tunnel connections on.
const GatewayPort = 7443

// Roles of a relay.
const (
	RoleGateway = "gateway"
	RoleForward = "forward"
)

// Environment variables a relay reads its configuration and key from.
const (
	EnvConfig = "BERTH_MESH_CONFIG"
	EnvKey    = "BERTH_MESH_KEY"
)

// Target is a service port a gateway lets peers reach.
type Target struct {
	Service string `json:"service"`
	Port    int    `json:"port"`
}

// Config is what one relay does.
type Config struct {
	Role string `json:"role"`
	// Service, Ports and Peers are a forwarder's: it listens on each port and
	// carries connections to a gateway (host:port) that serves the service.
	Service string   `json:"service,omitempty"`
	Ports   []int    `json:"ports,omitempty"`
	Peers   []string `json:"peers,omitempty"`
	// Allow is a gateway's: the only service ports it dials for peers.
	Allow []Target `json:"allow,omitempty"`
}

// Validate refuses a configuration a relay could not act on.
func (c Config) Validate() error {
	switch c.Role {
	case RoleGateway:
		for _, t := range c.Allow {
			if t.Service == "" || t.Port < 1 || t.Port > 65535 {
				return fmt.Errorf("mesh: bad target %+v", t)
			}
		}
	case RoleForward:
		if c.Service == "" || len(c.Ports) == 0 || len(c.Peers) == 0 {
			return errors.New("mesh: a forwarder needs a service, ports and peers")
		}
		for _, p := range c.Ports {
			if p < 1 || p > 65535 || p == GatewayPort {
				return fmt.Errorf("mesh: bad port %d", p)
			}
		}
	default:
		return fmt.Errorf("mesh: unknown role %q", c.Role)
	}
	return nil
}

// AppKey derives an application's tunnel key from a master key, so that
// every application has its own and none is stored anywhere.
func AppKey(master []byte, appKey string) []byte {
	m := hmac.New(sha256.New, master)
	m.Write([]byte("berth-mesh\x00" + appKey))
	return m.Sum(nil)
}

// Keys derives applications' tunnel keys from one master key.
type Keys struct{ Master []byte }

// MeshKey is the tunnel key of the application appKey (tenant.env.app).
func (k Keys) MeshKey(appKey string) []byte { return AppKey(k.Master, appKey) }

// tlsConfig is the TLS both ends use: one ed25519 certificate made from the
// application key, and a peer accepted only when it holds the same key.
func tlsConfig(seed []byte) (*tls.Config, error) {
	if len(seed) != ed25519.SeedSize {
		return nil, fmt.Errorf("mesh: key must be %d bytes", ed25519.SeedSize)
	}
	priv := ed25519.NewKeyFromSeed(seed)
	pub := priv.Public().(ed25519.PublicKey)
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		Subject:      pkix.Name{CommonName: "berth-mesh"},
		DNSNames:     []string{"berth-mesh"},
		NotBefore:    time.Date(2020, 1, 1, 0, 0, 0, 0, time.UTC),
		NotAfter:     time.Date(2120, 1, 1, 0, 0, 0, 0, time.UTC),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
	}
	der, err := x509.CreateCertificate(nil, tmpl, tmpl, pub, priv)
	if err != nil {
		return nil, err
	}
	// Pinning the public key replaces chain verification: there is no CA,
	// only the one key both ends derive.
	pin := func(raw [][]byte, _ [][]*x509.Certificate) error {
		if len(raw) == 0 {
			return errors.New("mesh: peer sent no certificate")
		}
		c, err := x509.ParseCertificate(raw[0])
		if err != nil {
			return err
		}
		if k, ok := c.PublicKey.(ed25519.PublicKey); !ok || !k.Equal(pub) {
			return errors.New("mesh: peer holds another application's key")
		}
		return nil
	}
	return &tls.Config{
		Certificates:          []tls.Certificate{{Certificate: [][]byte{der}, PrivateKey: priv}},
		MinVersion:            tls.VersionTLS13,
		InsecureSkipVerify:    true, // replaced by pin, for the client side
		VerifyPeerCertificate: pin,
		ClientAuth:            tls.RequireAnyClientCert,
		ServerName:            "berth-mesh",
	}, nil
}

// Relay runs one relay until ctx ends.
type Relay struct {
	Config Config
	Key    []byte
	Log    *slog.Logger
	// Dial reaches a gateway's target; nil means net.Dialer.
	Dial func(ctx context.Context, addr string) (net.Conn, error)
	// GatewayAddr is where a gateway listens; empty means ":7443".
	GatewayAddr string
	// ListenHost is where a forwarder listens; empty means every address.
	ListenHost string

	next atomic.Uint32
}

// Run serves until ctx ends or a listener fails.
func (r *Relay) Run(ctx context.Context) error {
	if err := r.Config.Validate(); err != nil {
		return err
	}
	tc, err := tlsConfig(r.Key)
	if err != nil {
		return err
	}
	if r.Log == nil {
		r.Log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	if r.Dial == nil {
		d := &net.Dialer{Timeout: 5 * time.Second}
		r.Dial = func(ctx context.Context, addr string) (net.Conn, error) { return d.DialContext(ctx, "tcp", addr) }
	}
	var lns []net.Listener
	var handle []func(net.Conn)
	switch r.Config.Role {
	case RoleGateway:
		addr := r.GatewayAddr
		if addr == "" {
			addr = ":" + strconv.Itoa(GatewayPort)
		}
		ln, err := tls.Listen("tcp", addr, tc)
		if err != nil {
			return err
		}
		lns = append(lns, ln)
		handle = append(handle, func(c net.Conn) { r.serve(ctx, c) })
	case RoleForward:
		for _, p := range r.Config.Ports {
			ln, err := net.Listen("tcp", net.JoinHostPort(r.ListenHost, strconv.Itoa(p)))
			if err != nil {
				for _, l := range lns {
					l.Close()
				}
				return err
			}
			port := p
			lns = append(lns, ln)
			handle = append(handle, func(c net.Conn) { r.forward(ctx, c, port, tc) })
		}
	}
	r.Log.Info("relay up", "role", r.Config.Role, "service", r.Config.Service)
	var wg sync.WaitGroup
	errc := make(chan error, len(lns))
	for i, ln := range lns {
		wg.Add(1)
		go func(ln net.Listener, h func(net.Conn)) {
			defer wg.Done()
			for {
				c, err := ln.Accept()
				if err != nil {
					errc <- err
					return
				}
				go h(c)
			}
		}(ln, handle[i])
	}
	select {
	case <-ctx.Done():
	case err = <-errc:
	}
	for _, ln := range lns {
		ln.Close()
	}
	wg.Wait()
	if ctx.Err() != nil {
		return nil
	}
	return err
}

// forward carries one local connection to a gateway that serves the
// service, trying the peers in turn from a rotating start.
func (r *Relay) forward(ctx context.Context, c net.Conn, port int, tc *tls.Config) {
	defer c.Close()
	peers := r.Config.Peers
	start := int(r.next.Add(1))
	for i := range peers {
		peer := peers[(start+i)%len(peers)]
		raw, err := r.Dial(ctx, peer)
		if err != nil {
			r.Log.Warn("peer unreachable", "peer", peer, "error", err)
			continue
		}
		tlsConn := tls.Client(raw, tc)
		_ = tlsConn.SetDeadline(time.Now().Add(10 * time.Second))
		if err := tlsConn.HandshakeContext(ctx); err != nil {
			r.Log.Warn("peer handshake failed", "peer", peer, "error", err)
			raw.Close()
			continue
		}
		if _, err := fmt.Fprintf(tlsConn, "%s %d\n", r.Config.Service, port); err != nil {
			tlsConn.Close()
			continue
		}
		br := bufio.NewReader(tlsConn)
		line, err := br.ReadString('\n')
		if err != nil || line != "ok\n" {
			r.Log.Warn("peer refused", "peer", peer, "answer", strings.TrimSpace(line), "error", err)
			tlsConn.Close()
			continue
		}
		_ = tlsConn.SetDeadline(time.Time{})
		splice(c, &bufferedConn{Conn: tlsConn, r: br})
		return
	}
}

// serve answers one tunnel: it reads the target, dials it if allowed, and
// splices the two connections.
func (r *Relay) serve(ctx context.Context, c net.Conn) {
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	br := bufio.NewReaderSize(c, 256)
	line, err := br.ReadSlice('\n')
	if err != nil {
		return
	}
	svc, portText, ok := strings.Cut(strings.TrimSpace(string(line)), " ")
	port, perr := strconv.Atoi(portText)
	if !ok || perr != nil || !r.allowed(svc, port) {
		fmt.Fprint(c, "refused\n")
		r.Log.Warn("target refused", "target", strings.TrimSpace(string(line)))
		return
	}
	up, err := r.Dial(ctx, net.JoinHostPort(svc, strconv.Itoa(port)))
	if err != nil {
		fmt.Fprint(c, "unreachable\n")
		r.Log.Warn("target unreachable", "service", svc, "port", port, "error", err)
		return
	}
	defer up.Close()
	if _, err := fmt.Fprint(c, "ok\n"); err != nil {
		return
	}
	_ = c.SetDeadline(time.Time{})
	splice(up, &bufferedConn{Conn: c, r: br})
}

func (r *Relay) allowed(svc string, port int) bool {
	for _, t := range r.Config.Allow {
		if t.Service == svc && t.Port == port {
			return true
		}
	}
	return false
}

// bufferedConn reads what a bufio.Reader already holds before the conn.
type bufferedConn struct {
	net.Conn
	r *bufio.Reader
}

func (b *bufferedConn) Read(p []byte) (int, error) { return b.r.Read(p) }

// splice copies both ways until both directions are done, passing on
// half-closes so request/response protocols see their EOFs.
func splice(a, b net.Conn) {
	var wg sync.WaitGroup
	wg.Add(2)
	cp := func(dst, src net.Conn) {
		defer wg.Done()
		_, _ = io.Copy(dst, src)
		if cw, ok := dst.(interface{ CloseWrite() error }); ok {
			_ = cw.CloseWrite()
		} else if bc, ok := dst.(*bufferedConn); ok {
			if cw, ok := bc.Conn.(interface{ CloseWrite() error }); ok {
				_ = cw.CloseWrite()
			}
		} else {
			_ = dst.Close()
		}
	}
	go cp(a, b)
	go cp(b, a)
	wg.Wait()
}

// ParseEnv reads a relay's configuration and key from the environment
// values EnvConfig and EnvKey (hex).
func ParseEnv(config, keyHex string) (Config, []byte, error) {
	var c Config
	if err := json.Unmarshal([]byte(config), &c); err != nil {
		return c, nil, fmt.Errorf("mesh: %s: %w", EnvConfig, err)
	}
	key, err := hex.DecodeString(strings.TrimSpace(keyHex))
	if err != nil {
		return c, nil, fmt.Errorf("mesh: %s: %w", EnvKey, err)
	}
	return c, key, c.Validate()
}
