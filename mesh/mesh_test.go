package mesh

import (
	"bufio"
	"context"
	"crypto/rand"
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// echo is a backend that answers each line with its name and the line.
func echo(t *testing.T, name string) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				sc := bufio.NewScanner(c)
				for sc.Scan() {
					fmt.Fprintf(c, "%s:%s\n", name, sc.Text())
				}
			}()
		}
	}()
	return ln.Addr().String()
}

func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	addr := ln.Addr().String()
	ln.Close()
	return addr
}

func start(t *testing.T, r *Relay) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- r.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		require.NoError(t, <-done)
	})
}

func key(t *testing.T) []byte {
	t.Helper()
	k := make([]byte, 32)
	_, err := rand.Read(k)
	require.NoError(t, err)
	return k
}

// roundTrip sends a line through addr and returns the answer, or the error.
func roundTrip(addr, line string) (string, error) {
	c, err := net.DialTimeout("tcp", addr, 2*time.Second)
	if err != nil {
		return "", err
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(3 * time.Second))
	if _, err := fmt.Fprintln(c, line); err != nil {
		return "", err
	}
	ans, err := bufio.NewReader(c).ReadString('\n')
	return strings.TrimSpace(ans), err
}

// mapDial sends service names to test addresses, as Docker's DNS would.
func mapDial(names map[string]string) func(context.Context, string) (net.Conn, error) {
	return func(ctx context.Context, addr string) (net.Conn, error) {
		host, port, _ := net.SplitHostPort(addr)
		if to, ok := names[host+":"+port]; ok {
			addr = to
		}
		var d net.Dialer
		return d.DialContext(ctx, "tcp", addr)
	}
}

func TestForwarderReachesServiceThroughGateway(t *testing.T) {
	db := echo(t, "db")
	secret := key(t)
	gw := freeAddr(t)
	// The forwarder listens on the service's port and asks for the same one.
	fwdPort := freeAddr(t)
	_, p, _ := net.SplitHostPort(fwdPort)
	port, _ := strconv.Atoi(p)
	start(t, &Relay{Config: Config{Role: RoleGateway, Allow: []Target{{Service: "db", Port: port}}},
		Key: secret, GatewayAddr: gw, Dial: mapDial(map[string]string{"db:" + p: db})})
	start(t, &Relay{Config: Config{Role: RoleForward, Service: "db", Ports: []int{port}, Peers: []string{freeAddr(t), gw}},
		Key: secret, ListenHost: "127.0.0.1"})

	require.Eventually(t, func() bool {
		ans, err := roundTrip(fwdPort, "hello")
		return err == nil && ans == "db:hello"
	}, 5*time.Second, 20*time.Millisecond, "the forwarder carries a connection to db, past a dead peer")
}

func TestGatewayRefusesOtherKeys(t *testing.T) {
	db := echo(t, "db")
	gw := freeAddr(t)
	secret := key(t)
	good, other := freeAddr(t), freeAddr(t)
	portOf := func(addr string) int {
		_, p, _ := net.SplitHostPort(addr)
		n, _ := strconv.Atoi(p)
		return n
	}
	start(t, &Relay{Config: Config{Role: RoleGateway, Allow: []Target{{Service: "db", Port: portOf(good)}, {Service: "db", Port: portOf(other)}}},
		Key: secret, GatewayAddr: gw, Dial: mapDial(map[string]string{
			"db:" + strconv.Itoa(portOf(good)): db, "db:" + strconv.Itoa(portOf(other)): db})})
	forwarder := func(k []byte, addr string) {
		start(t, &Relay{Config: Config{Role: RoleForward, Service: "db", Ports: []int{portOf(addr)}, Peers: []string{gw}}, Key: k, ListenHost: "127.0.0.1"})
	}
	forwarder(secret, good)
	forwarder(key(t), other)
	require.Eventually(t, func() bool {
		ans, err := roundTrip(good, "x")
		return err == nil && ans == "db:x"
	}, 5*time.Second, 20*time.Millisecond, "the positive control: the same key gets through")

	// Another application's key: the handshake fails, nothing reaches db.
	ans, err := roundTrip(other, "x")
	require.True(t, err != nil || ans == "", "answer %q", ans)

	// A raw TCP client without the key gets no tunnel either.
	c, err := net.DialTimeout("tcp", gw, time.Second)
	require.NoError(t, err)
	_ = c.SetDeadline(time.Now().Add(2 * time.Second))
	fmt.Fprintf(c, "db %d\n", portOf(good))
	b, _ := io.ReadAll(c)
	c.Close()
	require.NotContains(t, string(b), "db:", "plain TCP must not reach db")
}

func TestGatewayDialsOnlyAllowedTargets(t *testing.T) {
	secret := key(t)
	tc, err := tlsConfig(secret)
	require.NoError(t, err)
	cache := echo(t, "cache")
	gw := freeAddr(t)
	start(t, &Relay{Config: Config{Role: RoleGateway, Allow: []Target{{Service: "db", Port: 3306}}},
		Key: secret, GatewayAddr: gw, Dial: mapDial(map[string]string{"cache:6379": cache})})
	var answer string
	require.Eventually(t, func() bool {
		c, err := net.DialTimeout("tcp", gw, time.Second)
		if err != nil {
			return false
		}
		defer c.Close()
		tlsConn := tls.Client(c, tc)
		_ = tlsConn.SetDeadline(time.Now().Add(2 * time.Second))
		if _, err := fmt.Fprint(tlsConn, "cache 6379\n"); err != nil {
			return false
		}
		answer, _ = bufio.NewReader(tlsConn).ReadString('\n')
		return answer != ""
	}, 5*time.Second, 20*time.Millisecond)
	require.Equal(t, "refused\n", answer, "a target outside Allow is never dialled")
}

func TestConfigValidate(t *testing.T) {
	require.Error(t, Config{Role: "x"}.Validate())
	require.Error(t, Config{Role: RoleForward, Service: "db", Ports: []int{GatewayPort}, Peers: []string{"a:1"}}.Validate())
	require.Error(t, Config{Role: RoleForward, Service: "db", Ports: []int{80}}.Validate())
	require.Error(t, Config{Role: RoleGateway, Allow: []Target{{Service: "db", Port: 0}}}.Validate())
	require.NoError(t, Config{Role: RoleGateway}.Validate())
	_, _, err := ParseEnv(`{"role":"gateway"}`, "zz")
	require.Error(t, err)
	require.NotEqual(t, AppKey([]byte("m"), "a.b.c"), AppKey([]byte("m"), "a.b.d"))
}
