package nftables

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"testing"
	"time"

	nft "github.com/google/nftables"
	"github.com/google/nftables/binaryutil"
	"github.com/google/nftables/expr"
	"github.com/stretchr/testify/require"
	"golang.org/x/sys/unix"
)

// dialTimeout is short because a dropped SYN never gets an answer: the
// only way to see "blocked" is a timeout, and every blocked probe pays it.
const dialTimeout = 300 * time.Millisecond

// netNS is a network namespace a test made for itself, so that no test ever
// reads or writes the host's own ruleset.
type netNS struct {
	name string
	f    *os.File
}

func (ns netNS) fd() int { return int(ns.f.Fd()) }

// skipOrFail skips when the machine cannot run these tests, unless
// BERTH_REQUIRE_E2E=1 says it must (CI), where a skip would hide a broken
// setup behind a green run.
func skipOrFail(t *testing.T, format string, args ...any) {
	t.Helper()
	if os.Getenv("BERTH_REQUIRE_E2E") == "1" {
		t.Fatalf("BERTH_REQUIRE_E2E=1 but: "+format, args...)
	}
	t.Skipf(format, args...)
}

// newNetNS creates a fresh namespace with lo up, removed when the test ends.
func newNetNS(t *testing.T) netNS {
	t.Helper()
	if os.Geteuid() != 0 {
		skipOrFail(t, "nftables tests need root to create a network namespace (euid %d)", os.Geteuid())
	}
	if _, err := exec.LookPath("ip"); err != nil {
		skipOrFail(t, "nftables tests need iproute2's ip to create a network namespace: %v", err)
	}
	b := make([]byte, 6)
	_, err := rand.Read(b)
	require.NoError(t, err)
	name := "berth-fw-" + hex.EncodeToString(b)
	if out, err := exec.Command("ip", "netns", "add", name).CombinedOutput(); err != nil {
		skipOrFail(t, "cannot create network namespace %s: %v: %s", name, err, out)
	}
	t.Cleanup(func() {
		if out, err := exec.Command("ip", "netns", "del", name).CombinedOutput(); err != nil {
			t.Errorf("delete network namespace %s: %v: %s", name, err, out)
		}
	})
	f, err := os.Open("/run/netns/" + name)
	require.NoError(t, err)
	t.Cleanup(func() { _ = f.Close() })
	ns := netNS{name: name, f: f}

	c, err := nft.New(nft.WithNetNSFd(ns.fd()))
	require.NoError(t, err)
	if _, err := c.ListTables(); err != nil {
		skipOrFail(t, "nf_tables is not usable in a network namespace here: %v", err)
	}
	out, err := exec.Command("ip", "-n", name, "link", "set", "lo", "up").CombinedOutput()
	require.NoError(t, err, "bring lo up in %s: %s", name, out)
	return ns
}

// inNetNS runs fn on a fresh OS thread switched into ns. Sockets take the
// namespace of the thread that creates them and keep it afterwards, so a
// listener made here can be used from any goroutine.
func inNetNS(ns netNS, fn func() error) error {
	errc := make(chan error, 1)
	go func() {
		// Never unlocked: a thread whose namespace was switched must not go
		// back to the scheduler's pool, so it exits with this goroutine.
		runtime.LockOSThread()
		if err := unix.Setns(ns.fd(), unix.CLONE_NEWNET); err != nil {
			errc <- err
			return
		}
		errc <- fn()
	}()
	return <-errc
}

// listenTCP serves addr inside ns, accepting and dropping connections.
func listenTCP(t *testing.T, ns netNS, network, addr string) {
	t.Helper()
	var ln net.Listener
	require.NoError(t, inNetNS(ns, func() (err error) {
		ln, err = net.Listen(network, addr)
		return err
	}))
	t.Cleanup(func() { _ = ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			_ = c.Close()
		}
	}()
}

// listenUDPEcho echoes every datagram to addr inside ns back to its sender.
func listenUDPEcho(t *testing.T, ns netNS, addr string) {
	t.Helper()
	var pc net.PacketConn
	require.NoError(t, inNetNS(ns, func() (err error) {
		pc, err = net.ListenPacket("udp4", addr)
		return err
	}))
	t.Cleanup(func() { _ = pc.Close() })
	go func() {
		buf := make([]byte, 64)
		for {
			n, from, err := pc.ReadFrom(buf)
			if err != nil {
				return
			}
			_, _ = pc.WriteTo(buf[:n], from)
		}
	}()
}

// dialTCP connects from inside ns; loopback traffic in one namespace still
// crosses that namespace's input hook.
func dialTCP(ns netNS, network, addr string) error {
	return inNetNS(ns, func() error {
		c, err := net.DialTimeout(network, addr, dialTimeout)
		if err != nil {
			return err
		}
		return c.Close()
	})
}

// udpEcho sends one datagram from inside ns and waits for the echo.
func udpEcho(ns netNS, addr string) error {
	return inNetNS(ns, func() error {
		c, err := net.Dial("udp4", addr)
		if err != nil {
			return err
		}
		defer c.Close()
		if _, err := c.Write([]byte("ping")); err != nil {
			return err
		}
		if err := c.SetReadDeadline(time.Now().Add(dialTimeout)); err != nil {
			return err
		}
		buf := make([]byte, 8)
		n, err := c.Read(buf)
		if err != nil {
			return err
		}
		if string(buf[:n]) != "ping" {
			return errors.New("echo mismatch: " + strconv.Quote(string(buf[:n])))
		}
		return nil
	})
}

// requireBlocked asserts err is a timeout: a refused connection would mean
// no listener, not a firewall drop.
func requireBlocked(t *testing.T, err error, what string) {
	t.Helper()
	require.Error(t, err, "%s should be blocked", what)
	var ne net.Error
	require.True(t, errors.As(err, &ne) && ne.Timeout(), "%s: want a timeout (dropped), got %v", what, err)
}

// ruleset returns `nft list ruleset` inside ns, or "" without the nft CLI.
func ruleset(t *testing.T, ns netNS) string {
	t.Helper()
	if _, err := exec.LookPath("nft"); err != nil {
		return ""
	}
	out, err := exec.Command("ip", "netns", "exec", ns.name, "nft", "list", "ruleset").CombinedOutput()
	require.NoError(t, err, "nft list ruleset: %s", out)
	return string(out)
}

// ipIn runs `ip -n <ns> args...`. Every argument is a constant of the test.
func ipIn(t *testing.T, ns netNS, args ...string) {
	t.Helper()
	out, err := exec.Command("ip", append([]string{"-n", ns.name}, args...)...).CombinedOutput()
	require.NoError(t, err, "ip -n %s %v: %s", ns.name, args, out)
}

// link joins a and b with a veth pair, addresses each end (CIDR form) and
// brings both up. The pair goes away with either namespace.
func link(t *testing.T, a netNS, aDev, aAddr string, b netNS, bDev, bAddr string) {
	t.Helper()
	ipIn(t, a, "link", "add", aDev, "type", "veth", "peer", "name", bDev, "netns", b.name)
	ipIn(t, a, "addr", "add", aAddr, "dev", aDev)
	ipIn(t, b, "addr", "add", bAddr, "dev", bDev)
	ipIn(t, a, "link", "set", aDev, "up")
	ipIn(t, b, "link", "set", bDev, "up")
}

// enableForwarding makes ns route IPv4 between its interfaces. /proc/sys/net
// shows the namespace of the thread that opens it, so the write lands in ns
// and not on the host.
func enableForwarding(t *testing.T, ns netNS) {
	t.Helper()
	require.NoError(t, inNetNS(ns, func() error {
		return os.WriteFile("/proc/sys/net/ipv4/ip_forward", []byte("1"), 0)
	}))
}

// publish does in ns what Docker does for `-p <hostIP>:<hostPort>:<ctrPort>`:
// a DNAT in a nat prerouting chain, so the packet is routed on to ctrIP and
// crosses the forward hook instead of input. The table is the test's own.
func publish(t *testing.T, ns netNS, proto byte, hostIP netip.Addr, hostPort uint16, ctrIP netip.Addr, ctrPort uint16) {
	t.Helper()
	c, err := nft.New(nft.WithNetNSFd(ns.fd()))
	require.NoError(t, err)
	tbl := c.AddTable(&nft.Table{Name: "test-docker-nat", Family: nft.TableFamilyIPv4})
	ch := c.AddChain(&nft.Chain{
		Name:     "prerouting",
		Table:    tbl,
		Type:     nft.ChainTypeNAT,
		Hooknum:  nft.ChainHookPrerouting,
		Priority: nft.ChainPriorityNATDest,
	})
	c.AddRule(&nft.Rule{Table: tbl, Chain: ch, Exprs: []expr.Any{
		&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseNetworkHeader, Offset: ip4DaddrOff, Len: 4},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: hostIP.AsSlice()},
		&expr.Meta{Key: expr.MetaKeyL4PROTO, Register: 1},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{proto}},
		&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseTransportHeader, Offset: dportOff, Len: 2},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: binaryutil.BigEndian.PutUint16(hostPort)},
		&expr.Immediate{Register: 1, Data: ctrIP.AsSlice()},
		&expr.Immediate{Register: 2, Data: binaryutil.BigEndian.PutUint16(ctrPort)},
		&expr.NAT{Type: expr.NATTypeDestNAT, Family: unix.NFPROTO_IPV4, RegAddrMin: 1, RegProtoMin: 2, Specified: true},
	}})
	if err := c.Flush(); err != nil {
		skipOrFail(t, "cannot add a DNAT rule in a network namespace (nf_nat missing?): %v", err)
	}
}
