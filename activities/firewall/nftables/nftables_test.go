package nftables

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	nft "github.com/google/nftables"
	"github.com/stretchr/testify/require"

	"github.com/berth-dev/berth/activities/firewall"
)

func newDriver(t *testing.T, ns netNS, opts Options) *Driver {
	t.Helper()
	opts.NetNSFd = ns.fd()
	d, err := New(opts)
	require.NoError(t, err)
	return d
}

// chainRules reads the driver's chain straight from the kernel, bypassing
// the Driver, so assertions do not trust the code under test.
func chainRules(t *testing.T, ns netNS, table string) []*nft.Rule {
	t.Helper()
	c, err := nft.New(nft.WithNetNSFd(ns.fd()))
	require.NoError(t, err)
	tbl := &nft.Table{Name: table, Family: nft.TableFamilyINet}
	rules, err := c.GetRules(tbl, &nft.Chain{Name: chainName, Table: tbl})
	require.NoError(t, err)
	return rules
}

func tags(rules []*nft.Rule) []string {
	out := make([]string, len(rules))
	for i, r := range rules {
		out[i] = ruleTag(r)
	}
	return out
}

func countTag(t *testing.T, ns netNS, table, tag string) int {
	t.Helper()
	return len(withTag(chainRules(t, ns, table), tag))
}

func tableCount(t *testing.T, ns netNS, name string) int {
	t.Helper()
	c, err := nft.New(nft.WithNetNSFd(ns.fd()))
	require.NoError(t, err)
	tables, err := c.ListTablesOfFamily(nft.TableFamilyINet)
	require.NoError(t, err)
	n := 0
	for _, tb := range tables {
		if tb.Name == name {
			n++
		}
	}
	return n
}

func web(id string, port int) firewall.Opening {
	return firewall.Opening{ID: id, Protocol: "tcp", DestIP: "127.0.0.1", DestPort: port}
}

func TestOpenListClose(t *testing.T) {
	ns := newNetNS(t)
	ctx := context.Background()
	d := newDriver(t, ns, Options{})

	list, err := d.List(ctx)
	require.NoError(t, err, "List before any table exists")
	require.Empty(t, list)

	a := web("acme-dev-shop-web-3/8080-tcp", 30080)
	b := firewall.Opening{ID: "acme-dev-shop-dns-1/53-udp", Protocol: "udp", DestIP: "10.1.2.3", DestPort: 31053, Source: "192.0.2.0/24"}
	require.NoError(t, d.Open(ctx, a))
	require.NoError(t, d.Open(ctx, b))

	list, err = d.List(ctx)
	require.NoError(t, err)
	require.ElementsMatch(t, []firewall.Opening{a, b}, list)

	// A retry, from this Driver and from a fresh one (a restarted worker),
	// finds the rule by its tag and adds nothing.
	require.NoError(t, d.Open(ctx, a))
	require.NoError(t, newDriver(t, ns, Options{}).Open(ctx, a))
	require.Equal(t, 1, countTag(t, ns, DefaultTable, openTag(a.ID)))
	require.Len(t, chainRules(t, ns, DefaultTable), 4, "two openings and two guards: %v", tags(chainRules(t, ns, DefaultTable)))

	require.NoError(t, d.Close(ctx, a.ID))
	require.Zero(t, countTag(t, ns, DefaultTable, openTag(a.ID)))
	require.NoError(t, d.Close(ctx, a.ID), "closing twice is fine")
	require.NoError(t, d.Close(ctx, "never-opened"), "closing an unknown id is fine")

	list, err = d.List(ctx)
	require.NoError(t, err)
	require.Equal(t, []firewall.Opening{b}, list)
}

func TestOpenConcurrentSameID(t *testing.T) {
	ns := newNetNS(t)
	d := newDriver(t, ns, Options{})
	o := web("race/1-tcp", 30001)
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for range 8 {
		wg.Go(func() { errs <- d.Open(context.Background(), o) })
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		require.NoError(t, err)
	}
	require.Equal(t, 1, countTag(t, ns, DefaultTable, openTag(o.ID)))
}

func TestEnsureIdempotent(t *testing.T) {
	ns := newNetNS(t)
	ctx := context.Background()
	d := newDriver(t, ns, Options{Table: "berth-test"})
	require.NoError(t, d.Ensure(ctx))
	require.NoError(t, d.Ensure(ctx))
	require.NoError(t, d.Open(ctx, web("x/1-tcp", 30001)))
	require.NoError(t, d.Ensure(ctx))

	require.Equal(t, 1, tableCount(t, ns, "berth-test"))
	c, err := nft.New(nft.WithNetNSFd(ns.fd()))
	require.NoError(t, err)
	chains, err := c.ListChainsOfTableFamily(nft.TableFamilyINet)
	require.NoError(t, err)
	require.Len(t, chains, 1)
	ch := chains[0]
	require.Equal(t, chainName, ch.Name)
	require.Equal(t, nft.ChainTypeFilter, ch.Type)
	require.Equal(t, *nft.ChainHookInput, *ch.Hooknum)
	require.Equal(t, *nft.ChainPriorityFilter, *ch.Priority)
	require.Equal(t, nft.ChainPolicyAccept, *ch.Policy)

	// Ensure re-asserts the chain policy if someone changed it.
	drop := nft.ChainPolicyDrop
	tbl := &nft.Table{Name: "berth-test", Family: nft.TableFamilyINet}
	c.AddChain(&nft.Chain{Name: chainName, Table: tbl, Type: nft.ChainTypeFilter, Hooknum: nft.ChainHookInput, Priority: nft.ChainPriorityFilter, Policy: &drop})
	require.NoError(t, c.Flush())
	require.NoError(t, d.Ensure(ctx))
	ch, err = c.ListChain(tbl, chainName)
	require.NoError(t, err)
	require.Equal(t, nft.ChainPolicyAccept, *ch.Policy)

	// One guard per protocol, last in the chain, after the opening.
	require.Equal(t, []string{
		"berth:open:x/1-tcp",
		"berth:guard:tcp:30000-32767",
		"berth:guard:udp:30000-32767",
	}, tags(chainRules(t, ns, "berth-test")))
}

func TestEnsureReplacesGuardOfOldRange(t *testing.T) {
	ns := newNetNS(t)
	ctx := context.Background()
	old := newDriver(t, ns, Options{})
	require.NoError(t, old.Open(ctx, web("keep/1-tcp", 30001)))

	d := newDriver(t, ns, Options{PortMin: 20000, PortMax: 20999})
	require.NoError(t, d.Ensure(ctx))
	require.Equal(t, []string{
		"berth:open:keep/1-tcp",
		"berth:guard:tcp:20000-20999",
		"berth:guard:udp:20000-20999",
	}, tags(chainRules(t, ns, DefaultTable)))
}

func TestOpenInsertsBeforeGuards(t *testing.T) {
	ns := newNetNS(t)
	ctx := context.Background()
	d := newDriver(t, ns, Options{})
	require.NoError(t, d.Ensure(ctx))
	for i := range 3 {
		require.NoError(t, d.Open(ctx, web(fmt.Sprintf("o/%d-tcp", i), 30000+i)))
	}
	got := tags(chainRules(t, ns, DefaultTable))
	require.Len(t, got, 5)
	for _, tag := range got[:3] {
		require.True(t, strings.HasPrefix(tag, openTagPrefix), "openings first: %v", got)
	}
	for _, tag := range got[3:] {
		require.True(t, strings.HasPrefix(tag, guardTagPrefix), "guards last: %v", got)
	}
}

func TestListRoundTripShapes(t *testing.T) {
	ns := newNetNS(t)
	ctx := context.Background()
	d := newDriver(t, ns, Options{})
	long := strings.Repeat("a", maxIDLen-len("x/")) + "x/"
	in := []firewall.Opening{
		{ID: "v4-any", Protocol: "tcp", DestIP: "0.0.0.0", DestPort: 30001},
		{ID: "v4-host-src", Protocol: "udp", DestIP: "198.51.100.7", DestPort: 30002, Source: "203.0.113.9/32"},
		{ID: "v4-net-src", Protocol: "tcp", DestIP: "198.51.100.7", DestPort: 65535, Source: "10.0.0.0/8"},
		{ID: "v4-odd-src", Protocol: "tcp", DestIP: "198.51.100.7", DestPort: 1, Source: "172.16.0.0/12"},
		{ID: "v6", Protocol: "tcp", DestIP: "2001:db8::1", DestPort: 30003, Source: "fd00::/8"},
		{ID: "v6-any", Protocol: "udp", DestIP: "::", DestPort: 30004},
		{ID: long, Protocol: "tcp", DestIP: "127.0.0.1", DestPort: 30005},
	}
	require.Len(t, long, maxIDLen)
	for _, o := range in {
		require.NoError(t, d.Open(ctx, o), o.ID)
	}
	got, err := d.List(ctx)
	require.NoError(t, err)
	require.ElementsMatch(t, in, got)

	// Inputs that List returns in canonical form.
	canon := []struct{ in, want firewall.Opening }{
		{
			firewall.Opening{ID: "bare-src", Protocol: "tcp", DestIP: "127.0.0.1", DestPort: 30010, Source: "192.0.2.1"},
			firewall.Opening{ID: "bare-src", Protocol: "tcp", DestIP: "127.0.0.1", DestPort: 30010, Source: "192.0.2.1/32"},
		},
		{
			firewall.Opening{ID: "unmasked-src", Protocol: "tcp", DestIP: "127.0.0.1", DestPort: 30011, Source: "192.0.2.77/24"},
			firewall.Opening{ID: "unmasked-src", Protocol: "tcp", DestIP: "127.0.0.1", DestPort: 30011, Source: "192.0.2.0/24"},
		},
		{
			firewall.Opening{ID: "zero-src", Protocol: "tcp", DestIP: "127.0.0.1", DestPort: 30012, Source: "0.0.0.0/0"},
			firewall.Opening{ID: "zero-src", Protocol: "tcp", DestIP: "127.0.0.1", DestPort: 30012},
		},
		{
			firewall.Opening{ID: "mapped", Protocol: "tcp", DestIP: "::ffff:192.0.2.5", DestPort: 30013},
			firewall.Opening{ID: "mapped", Protocol: "tcp", DestIP: "192.0.2.5", DestPort: 30013},
		},
	}
	for _, c := range canon {
		require.NoError(t, d.Open(ctx, c.in))
		got, err := d.List(ctx)
		require.NoError(t, err)
		require.Contains(t, got, c.want)
	}

	if rs := ruleset(t, ns); rs != "" {
		t.Logf("nft list ruleset:\n%s", rs)
		require.Contains(t, rs, `comment "berth:open:`+long+`"`)
		require.Contains(t, rs, "ip saddr 10.0.0.0/8 ip daddr 198.51.100.7 tcp dport 65535")
		require.Contains(t, rs, "ip6 saddr fd00::/8 ip6 daddr 2001:db8::1 tcp dport 30003")
		require.Contains(t, rs, "tcp dport 30000-32767 ct state new counter packets 0 bytes 0 drop")
	}
}

func TestTraffic(t *testing.T) {
	ns := newNetNS(t)
	ctx := context.Background()
	d := newDriver(t, ns, Options{})
	require.NoError(t, d.Ensure(ctx))

	const inRange, outside, udpPort = 31000, 29999, 31001
	inAddr := fmt.Sprintf("127.0.0.1:%d", inRange)
	listenTCP(t, ns, "tcp4", inAddr)
	listenTCP(t, ns, "tcp4", fmt.Sprintf("127.0.0.1:%d", outside))
	listenUDPEcho(t, ns, fmt.Sprintf("127.0.0.1:%d", udpPort))

	requireBlocked(t, dialTCP(ns, "tcp4", inAddr), "tcp in range before Open")
	requireBlocked(t, udpEcho(ns, fmt.Sprintf("127.0.0.1:%d", udpPort)), "udp in range before Open")
	require.NoError(t, dialTCP(ns, "tcp4", fmt.Sprintf("127.0.0.1:%d", outside)), "port outside the range is never blocked")

	o := web("traffic/31000-tcp", inRange)
	u := firewall.Opening{ID: "traffic/31001-udp", Protocol: "udp", DestIP: "127.0.0.1", DestPort: udpPort}
	require.NoError(t, d.Open(ctx, o))
	require.NoError(t, d.Open(ctx, u))
	require.NoError(t, dialTCP(ns, "tcp4", inAddr), "tcp after Open")
	require.NoError(t, udpEcho(ns, fmt.Sprintf("127.0.0.1:%d", udpPort)), "udp after Open")

	rs := ruleset(t, ns)
	if rs != "" {
		t.Logf("nft list ruleset while open:\n%s", rs)
	}

	require.NoError(t, d.Close(ctx, o.ID))
	require.NoError(t, d.Close(ctx, u.ID))
	requireBlocked(t, dialTCP(ns, "tcp4", inAddr), "tcp after Close")
	requireBlocked(t, udpEcho(ns, fmt.Sprintf("127.0.0.1:%d", udpPort)), "udp after Close")
	require.NoError(t, dialTCP(ns, "tcp4", fmt.Sprintf("127.0.0.1:%d", outside)), "port outside the range is never blocked")

	// An opening for another address does not open this one.
	require.NoError(t, d.Open(ctx, firewall.Opening{ID: "other-ip", Protocol: "tcp", DestIP: "127.0.0.2", DestPort: inRange}))
	requireBlocked(t, dialTCP(ns, "tcp4", inAddr), "tcp opened for another destination")
	// Nor one whose source does not match: the client here is 127.0.0.1.
	require.NoError(t, d.Open(ctx, firewall.Opening{ID: "other-src", Protocol: "tcp", DestIP: "127.0.0.1", DestPort: inRange, Source: "192.0.2.0/24"}))
	requireBlocked(t, dialTCP(ns, "tcp4", inAddr), "tcp opened for another source")
	require.NoError(t, d.Open(ctx, firewall.Opening{ID: "lo-src", Protocol: "tcp", DestIP: "127.0.0.1", DestPort: inRange, Source: "127.0.0.0/8"}))
	require.NoError(t, dialTCP(ns, "tcp4", inAddr), "tcp opened for the loopback source")
	require.NoError(t, d.Close(ctx, "lo-src"))

	// 0.0.0.0 means "published on every address".
	require.NoError(t, d.Open(ctx, firewall.Opening{ID: "any-ip", Protocol: "tcp", DestIP: "0.0.0.0", DestPort: inRange}))
	require.NoError(t, dialTCP(ns, "tcp4", inAddr), "tcp opened on 0.0.0.0")

	// Remove drops the whole table, and with it the guard.
	require.NoError(t, d.Remove(ctx))
	require.NoError(t, d.Remove(ctx), "removing twice is fine")
	require.Zero(t, tableCount(t, ns, DefaultTable))
	require.NoError(t, dialTCP(ns, "tcp4", inAddr), "no table, nothing blocked")
}

func TestTrafficIPv6(t *testing.T) {
	ns := newNetNS(t)
	ctx := context.Background()
	d := newDriver(t, ns, Options{})
	require.NoError(t, d.Ensure(ctx))

	addr := "[::1]:31000"
	if _, err := os.Stat("/proc/sys/net/ipv6"); err != nil {
		skipOrFail(t, "IPv6 is disabled on this kernel: %v", err)
	}
	// lo gets ::1 when it comes up; wait until it is bindable rather than
	// assume it already is.
	require.Eventually(t, func() bool {
		return inNetNS(ns, func() error {
			ln, err := net.Listen("tcp6", addr)
			if err == nil {
				_ = ln.Close()
			}
			return err
		}) == nil
	}, 5*time.Second, 20*time.Millisecond, "::1 never became bindable in the namespace")
	listenTCP(t, ns, "tcp6", addr)

	requireBlocked(t, dialTCP(ns, "tcp6", addr), "tcp6 before Open")
	require.NoError(t, d.Open(ctx, firewall.Opening{ID: "v6/31000-tcp", Protocol: "tcp", DestIP: "::1", DestPort: 31000, Source: "::1/128"}))
	require.NoError(t, dialTCP(ns, "tcp6", addr), "tcp6 after Open")
	require.NoError(t, d.Close(ctx, "v6/31000-tcp"))
	requireBlocked(t, dialTCP(ns, "tcp6", addr), "tcp6 after Close")
}

func TestInvalidOpeningAddsNothing(t *testing.T) {
	ns := newNetNS(t)
	ctx := context.Background()
	d := newDriver(t, ns, Options{})

	bad := web("bad id with spaces", 30001)
	err := d.Open(ctx, bad)
	var inv *InvalidOpeningError
	require.ErrorAs(t, err, &inv)
	require.Zero(t, tableCount(t, ns, DefaultTable), "a refused Open must not even create the table")

	require.NoError(t, d.Open(ctx, web("good/1-tcp", 30001)))
	before := tags(chainRules(t, ns, DefaultTable))
	for _, o := range []firewall.Opening{
		web("", 30001),
		{ID: "p", Protocol: "sctp", DestIP: "127.0.0.1", DestPort: 30001},
		{ID: "p", Protocol: "tcp", DestIP: "not-an-ip", DestPort: 30001},
		{ID: "p", Protocol: "tcp", DestIP: "127.0.0.1", DestPort: 70000},
		{ID: "p", Protocol: "tcp", DestIP: "127.0.0.1", DestPort: 30001, Source: "::/0"},
	} {
		require.ErrorAs(t, d.Open(ctx, o), &inv, "%+v", o)
	}
	require.Equal(t, before, tags(chainRules(t, ns, DefaultTable)))
	require.ErrorAs(t, d.Close(ctx, "bad id"), &inv)
}

// A table that already exists under our name but with a chain berth cannot
// use (a regular chain called "input") makes the kernel refuse our batch:
// Open must fail with the attempt named, and leave nothing half-done.
func TestOpenFailsOnForeignChain(t *testing.T) {
	ns := newNetNS(t)
	c, err := nft.New(nft.WithNetNSFd(ns.fd()))
	require.NoError(t, err)
	tbl := c.AddTable(&nft.Table{Name: DefaultTable, Family: nft.TableFamilyINet})
	c.AddChain(&nft.Chain{Name: chainName, Table: tbl})
	require.NoError(t, c.Flush())

	d := newDriver(t, ns, Options{})
	err = d.Open(context.Background(), web("f/1-tcp", 30001))
	require.Error(t, err)
	require.Contains(t, err.Error(), `nftables: open "f/1-tcp" (tcp 127.0.0.1 port 30001) in table inet berth`)
	t.Logf("error: %v", err)
	require.Empty(t, chainRules(t, ns, DefaultTable), "the failed batch must add no rule")

	err = d.Ensure(context.Background())
	require.ErrorContains(t, err, "nftables: ensure table inet berth chain input")
}

func TestNotANetNS(t *testing.T) {
	newNetNS(t) // for the root/support skip only
	f, err := os.Open(os.DevNull)
	require.NoError(t, err)
	defer f.Close()
	d, err := New(Options{NetNSFd: int(f.Fd())})
	require.NoError(t, err)
	_, err = d.List(context.Background())
	require.ErrorContains(t, err, "nftables: list inet chains")
	t.Logf("error: %v", err)
}

func TestCancelledContext(t *testing.T) {
	ns := newNetNS(t)
	d := newDriver(t, ns, Options{})
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	err := d.Open(ctx, web("c/1-tcp", 30001))
	require.True(t, errors.Is(err, context.Canceled), "got %v", err)
	require.Zero(t, tableCount(t, ns, DefaultTable))
}

func TestDeadlineContextWorks(t *testing.T) {
	ns := newNetNS(t)
	d := newDriver(t, ns, Options{})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	require.NoError(t, d.Open(ctx, web("d/1-tcp", 30001)))
	list, err := d.List(ctx)
	require.NoError(t, err)
	require.Len(t, list, 1)
}
