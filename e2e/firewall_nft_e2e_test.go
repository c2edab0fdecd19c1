package e2e

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	nft "github.com/google/nftables"
	"github.com/stretchr/testify/require"
	"golang.org/x/sys/unix"

	"github.com/berth-dev/berth"
	"github.com/berth-dev/berth/firewall"
	"github.com/berth-dev/berth/firewall/nftables"
	"github.com/berth-dev/berth/store"
	"github.com/berth-dev/berth/workflows"
)

// dropFirewallTables deletes the inet tables whose names start with prefix:
// this run's at its end, and those earlier, killed runs left.
func dropFirewallTables(ctx context.Context, prefix string) error {
	c, err := nft.New()
	if err != nil {
		return err
	}
	tables, err := c.ListTablesOfFamily(nft.TableFamilyINet)
	if err != nil {
		return err
	}
	for _, tb := range tables {
		if strings.HasPrefix(tb.Name, prefix) {
			d, err := nftables.New(nftables.Options{Table: tb.Name})
			if err != nil {
				return err
			}
			if err := d.Remove(ctx); err != nil {
				return err
			}
		}
	}
	return nil
}

// skipOrFail skips when the machine cannot run a test, unless
// BERTH_REQUIRE_E2E says it must (CI), where a skip would hide a broken setup.
func skipOrFail(t *testing.T, format string, args ...any) {
	t.Helper()
	if os.Getenv("BERTH_REQUIRE_E2E") != "" {
		t.Fatalf(format, args...)
	}
	t.Skipf(format, args...)
}

// outside is a network namespace of the test's own, joined to the machine
// by a veth pair and routed through it: a client on another machine, whose
// packets reach the hosts' published ports through the input hook (h2's
// port proxy) or, DNAT'd by the engine, the forward hook (the default
// engine), as they would from the network.
type outside struct {
	name string
	f    *os.File
}

func newOutside(t *testing.T) outside {
	t.Helper()
	if _, err := exec.LookPath("ip"); err != nil {
		skipOrFail(t, "the firewall test needs iproute2's ip: %v", err)
	}
	id := randHex(4)
	o := outside{name: "berth-e2e-" + id}
	dev := "bfw" + id
	var n [1]byte
	_, _ = rand.Read(n[:])
	subnet := fmt.Sprintf("10.241.%d", n[0])
	ip := func(args ...string) {
		t.Helper()
		// Every argument is made by this test.
		out, err := exec.Command("ip", args...).CombinedOutput()
		require.NoError(t, err, "ip %v: %s", args, out)
	}
	ip("netns", "add", o.name)
	t.Cleanup(func() { _ = exec.Command("ip", "netns", "del", o.name).Run() })
	ip("link", "add", dev, "type", "veth", "peer", "name", "eth0", "netns", o.name)
	t.Cleanup(func() { _ = exec.Command("ip", "link", "del", dev).Run() })
	ip("addr", "add", subnet+".1/30", "dev", dev)
	ip("link", "set", dev, "up")
	ip("-n", o.name, "addr", "add", subnet+".2/30", "dev", "eth0")
	ip("-n", o.name, "link", "set", "eth0", "up")
	ip("-n", o.name, "link", "set", "lo", "up")
	ip("-n", o.name, "route", "add", "default", "via", subnet+".1")
	f, err := os.Open("/run/netns/" + o.name)
	require.NoError(t, err)
	t.Cleanup(func() { _ = f.Close() })
	o.f = f
	return o
}

// dial connects from inside the namespace. Sockets take the namespace of
// the thread that makes them, so a locked thread is switched in for the
// connect and back out after it. It must come back: a thread that ended in
// another namespace would end with it, and the berth processes this test
// binary started die with the thread that forked them (Pdeathsig).
func (o outside) dial(ctx context.Context, network, addr string) (net.Conn, error) {
	type result struct {
		c   net.Conn
		err error
	}
	ch := make(chan result, 1)
	go func() {
		runtime.LockOSThread()
		home, err := os.Open("/proc/thread-self/ns/net")
		if err != nil {
			runtime.UnlockOSThread()
			ch <- result{err: err}
			return
		}
		defer home.Close()
		if err := unix.Setns(int(o.f.Fd()), unix.CLONE_NEWNET); err != nil {
			runtime.UnlockOSThread()
			ch <- result{err: err}
			return
		}
		d := net.Dialer{Timeout: time.Second}
		c, err := d.DialContext(ctx, network, addr)
		if unix.Setns(int(home.Fd()), unix.CLONE_NEWNET) == nil {
			runtime.UnlockOSThread()
		}
		ch <- result{c, err}
	}()
	r := <-ch
	return r.c, r.err
}

// get fetches /version from addr, from outside.
func (o outside) get(addr string) error {
	c := &http.Client{Timeout: 3 * time.Second, Transport: &http.Transport{DialContext: o.dial, DisableKeepAlives: true}}
	resp, err := c.Get("http://" + addr + "/version")
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET /version: %s", resp.Status)
	}
	return nil
}

// blocked says whether a connection from outside to addr times out: a
// dropped SYN is never answered, where a port nobody listens on is refused.
func (o outside) blocked(addr string) bool {
	c, err := o.dial(context.Background(), "tcp4", addr)
	if err == nil {
		_ = c.Close()
		return false
	}
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// listenOn serves a port of the window on a host's address from this
// machine, accepting and closing connections, so that "blocked" can only be
// the firewall.
func listenOn(t *testing.T, addr string) {
	t.Helper()
	ln, err := net.Listen("tcp4", addr)
	require.NoError(t, err)
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

// freeWindowPort is a port of the run's window that nothing on ip uses.
func (hs *harness) freeWindowPort(t *testing.T, ip string) int {
	t.Helper()
	for p := hs.portMax; p >= hs.portMin; p-- {
		ln, err := net.Listen("tcp4", net.JoinHostPort(ip, strconv.Itoa(p)))
		if err == nil {
			_ = ln.Close()
			return p
		}
	}
	require.FailNow(t, "no free port in the window", "%s %d-%d", ip, hs.portMin, hs.portMax)
	return 0
}

// The nftables firewall inside real runs, on the two hosts, reached from
// another network namespace as from another machine: a port a deploy
// publishes is reachable once opened; a port of the window without an
// opening is not, though something listens and this machine (health
// checks, HAProxy) reaches it; an opening whose rule is deleted by hand
// stops the traffic until the reconciler opens it again, and a rule nobody
// recorded is closed by it; after delete, the ports are closed again.
func TestFirewallNftablesPipeline(t *testing.T) {
	hs := needHarness(t)
	if hs.fwTable == "" {
		skipOrFail(t, "the worker runs without nftables here (not root)")
	}
	out := newOutside(t)
	apps := hs.newEnv(t, "nft")
	hs.deployOK(t, apps, "shop", webCompose("web", 2, ""))
	svc := hs.app(t, apps, "shop").Services[0]
	require.Len(t, svc.Instances, 2)
	require.NotEqual(t, svc.Instances[0].Host, svc.Instances[1].Host, "one instance on each host")

	ctx := context.Background()
	rules, err := nftables.New(nftables.Options{Table: hs.fwTable})
	require.NoError(t, err)
	held := func() map[string]firewall.Opening {
		t.Helper()
		list, err := rules.List(ctx)
		require.NoError(t, err)
		m := map[string]firewall.Opening{}
		for _, o := range list {
			m[o.ID] = o
		}
		return m
	}
	var openings []berth.FirewallOpening
	require.NoError(t, hs.store.DB().Where("instance_name IN ?", []string{svc.Instances[0].Name, svc.Instances[1].Name}).
		Order("opening_id").Find(&openings).Error)
	require.Len(t, openings, 2)
	addrs := map[string]string{}
	for _, in := range svc.Instances {
		require.Len(t, in.Ports, 1)
		addrs[in.Name] = net.JoinHostPort(in.Ports[0].HostIP, strconv.Itoa(in.Ports[0].HostPort))
	}
	for _, o := range openings {
		require.Equal(t, berth.OpeningOpen, o.State)
		rule, ok := held()[o.OpeningID]
		require.True(t, ok, "the run's opening %s is a rule in table %s", o.OpeningID, hs.fwTable)
		require.Equal(t, addrs[o.InstanceName], net.JoinHostPort(rule.DestIP, strconv.Itoa(rule.DestPort)))
		require.Eventually(t, func() bool { return out.get(addrs[o.InstanceName]) == nil }, 10*time.Second, 100*time.Millisecond,
			"instance %s at %s is reachable from outside once opened", o.InstanceName, addrs[o.InstanceName])
	}

	// The rest of the window stays closed, on both hosts' addresses.
	var spare []string
	for _, th := range hs.hosts {
		addr := net.JoinHostPort(th.IP, strconv.Itoa(hs.freeWindowPort(t, th.IP)))
		listenOn(t, addr)
		c, err := net.DialTimeout("tcp4", addr, time.Second)
		require.NoError(t, err, "this machine reaches %s", addr)
		_ = c.Close()
		require.True(t, out.blocked(addr), "a port of the window with no opening is closed to the outside: %s", addr)
		spare = append(spare, addr)
	}

	// Drift: an opening's rule deleted by hand closes the port; the
	// reconciler finds it and opens it again. A rule berth never recorded
	// is closed by the same pass.
	lost := openings[0]
	require.NoError(t, rules.Close(ctx, lost.OpeningID))
	require.True(t, out.blocked(addrs[lost.InstanceName]), "without its rule, %s is closed to the outside", addrs[lost.InstanceName])
	code, _ := httpGet(t, "http://"+addrs[lost.InstanceName]+"/version")
	require.Equal(t, http.StatusOK, code, "the instance itself still serves")
	host, port, _ := net.SplitHostPort(spare[0])
	p, _ := strconv.Atoi(port)
	require.NoError(t, rules.Open(ctx, firewall.Opening{ID: "by-hand/1-tcp", Protocol: "tcp", DestIP: host, DestPort: p}))
	require.False(t, out.blocked(spare[0]), "a rule made by hand opens the port")

	rec := hs.reconcile(t)
	hs.recordHistory(t, workflows.ReconcileID(), "", "reconcile-firewall-repair")
	repaired := map[string]string{}
	for _, f := range rec.Findings {
		if f.Kind == berth.FindingFirewallRepaired {
			repaired[f.Target] = f.Detail
		}
	}
	require.Contains(t, repaired[lost.OpeningID], "opened again", "findings: %v", rec.Findings)
	require.Contains(t, repaired["by-hand/1-tcp"], "closed", "findings: %v", rec.Findings)
	require.NoError(t, out.get(addrs[lost.InstanceName]), "reopened by the reconciler")
	require.True(t, out.blocked(spare[0]), "the stray rule is gone")
	again := hs.reconcile(t)
	for _, f := range again.Findings {
		require.NotEqual(t, berth.FindingFirewallRepaired, f.Kind, "a repaired firewall needs nothing: %v", f)
	}

	// Delete closes every opening: the rules go, and the ports, served
	// again from this machine, are closed to the outside.
	hs.deleteOK(t, apps, "shop")
	now := held()
	for _, o := range openings {
		require.NotContains(t, now, o.OpeningID)
		var rec store.PortAllocation
		err := hs.store.DB().Where("instance_name = ?", o.InstanceName).First(&rec).Error
		require.Error(t, err, "the port of %s is released", o.InstanceName)
		listenOn(t, addrs[o.InstanceName])
		require.True(t, out.blocked(addrs[o.InstanceName]), "after delete, %s is closed to the outside", addrs[o.InstanceName])
	}
}
