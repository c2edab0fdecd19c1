package nftables

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	nft "github.com/google/nftables"
	"github.com/google/nftables/expr"
	"github.com/google/nftables/userdata"
	"github.com/mdlayher/netlink"
	"github.com/stretchr/testify/require"
	"golang.org/x/sys/unix"

	"github.com/berth-dev/berth/firewall"
)

func newDriver(t *testing.T, ns netNS, opts Options) *Driver {
	t.Helper()
	opts.NetNSFd = ns.fd()
	d, err := New(opts)
	require.NoError(t, err)
	return d
}

var bothChains = []string{inputChain, forwardChain}

// chainRules reads one of the driver's chains straight from the kernel,
// bypassing the Driver, so assertions do not trust the code under test.
func chainRules(t *testing.T, ns netNS, table, chain string) []*nft.Rule {
	t.Helper()
	c, err := nft.New(nft.WithNetNSFd(ns.fd()))
	require.NoError(t, err)
	tbl := &nft.Table{Name: table, Family: nft.TableFamilyINet}
	if chain == forwardChain {
		// GetRules cannot decode the forward chain (see dumpRules).
		nl, err := netlink.Dial(unix.NETLINK_NETFILTER, &netlink.Config{NetNS: ns.fd()})
		require.NoError(t, err)
		defer nl.Close()
		rules, err := dumpRules(nl, tbl, chain)
		require.NoError(t, err)
		return rules
	}
	rules, err := c.GetRules(tbl, &nft.Chain{Name: chain, Table: tbl})
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

func countTag(t *testing.T, ns netNS, table, chain, tag string) int {
	t.Helper()
	return len(withTag(chainRules(t, ns, table, chain), tag))
}

// packets returns the counter of the one rule tagged tag in chain.
func packets(t *testing.T, ns netNS, chain, tag string) uint64 {
	t.Helper()
	rules := withTag(chainRules(t, ns, DefaultTable, chain), tag)
	require.Len(t, rules, 1, "rules tagged %q in chain %s", tag, chain)
	for _, e := range rules[0].Exprs {
		if c, ok := e.(*expr.Counter); ok {
			return c.Packets
		}
	}
	require.Fail(t, "no counter", "rule tagged %q in chain %s", tag, chain)
	return 0
}

// forwardOpenings parses the forward chain's opening rules, so a test can
// check they say the same as the input chain (which List reads).
func forwardOpenings(t *testing.T, ns netNS, table string) []firewall.Opening {
	t.Helper()
	var out []firewall.Opening
	for _, r := range chainRules(t, ns, table, forwardChain) {
		id, ok := strings.CutPrefix(ruleTag(r), openTagPrefix)
		if !ok {
			continue
		}
		o, err := parseRule(id, r.Exprs)
		require.NoError(t, err, "forward rule tagged %q", ruleTag(r))
		out = append(out, o)
	}
	return out
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
	for _, chain := range bothChains {
		require.Equal(t, 1, countTag(t, ns, DefaultTable, chain, openTag(a.ID)), chain)
		rules := chainRules(t, ns, DefaultTable, chain)
		require.Len(t, rules, 4, "two openings and two guards in %s: %v", chain, tags(rules))
	}
	require.ElementsMatch(t, []firewall.Opening{a, b}, forwardOpenings(t, ns, DefaultTable))

	require.NoError(t, d.Close(ctx, a.ID))
	for _, chain := range bothChains {
		require.Zero(t, countTag(t, ns, DefaultTable, chain, openTag(a.ID)), chain)
	}
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
	for _, chain := range bothChains {
		require.Equal(t, 1, countTag(t, ns, DefaultTable, chain, openTag(o.ID)), chain)
	}
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
	require.Len(t, chains, 2)
	byName := map[string]*nft.Chain{}
	for _, ch := range chains {
		byName[ch.Name] = ch
	}
	for name, want := range map[string]struct {
		hook nft.ChainHook
		prio nft.ChainPriority
	}{
		inputChain:   {*nft.ChainHookInput, *nft.ChainPriorityFilter},
		forwardChain: {*nft.ChainHookForward, *nft.ChainPriorityFilter - 1},
	} {
		ch := byName[name]
		require.NotNil(t, ch, "chain %s", name)
		require.Equal(t, nft.ChainTypeFilter, ch.Type, name)
		require.Equal(t, want.hook, *ch.Hooknum, name)
		require.Equal(t, want.prio, *ch.Priority, name)
		require.Equal(t, nft.ChainPolicyAccept, *ch.Policy, name)
	}

	// Ensure re-asserts the chain policy if someone changed it.
	drop := nft.ChainPolicyDrop
	tbl := &nft.Table{Name: "berth-test", Family: nft.TableFamilyINet}
	c.AddChain(&nft.Chain{Name: inputChain, Table: tbl, Type: nft.ChainTypeFilter, Hooknum: nft.ChainHookInput, Priority: nft.ChainPriorityFilter, Policy: &drop})
	c.AddChain(&nft.Chain{Name: forwardChain, Table: tbl, Type: nft.ChainTypeFilter, Hooknum: nft.ChainHookForward, Priority: forwardPriority, Policy: &drop})
	require.NoError(t, c.Flush())
	require.NoError(t, d.Ensure(ctx))
	for _, chain := range bothChains {
		ch, err := c.ListChain(tbl, chain)
		require.NoError(t, err)
		require.Equal(t, nft.ChainPolicyAccept, *ch.Policy, chain)
	}

	// One guard per protocol, last in each chain, after the opening.
	for _, chain := range bothChains {
		require.Equal(t, []string{
			"berth:open:x/1-tcp",
			"berth:guard:tcp:30000-32767",
			"berth:guard:udp:30000-32767",
		}, tags(chainRules(t, ns, "berth-test", chain)), chain)
	}
}

func TestEnsureReplacesGuardOfOldRange(t *testing.T) {
	ns := newNetNS(t)
	ctx := context.Background()
	old := newDriver(t, ns, Options{})
	require.NoError(t, old.Open(ctx, web("keep/1-tcp", 30001)))

	d := newDriver(t, ns, Options{PortMin: 20000, PortMax: 20999})
	require.NoError(t, d.Ensure(ctx))
	for _, chain := range bothChains {
		require.Equal(t, []string{
			"berth:open:keep/1-tcp",
			"berth:guard:tcp:20000-20999",
			"berth:guard:udp:20000-20999",
		}, tags(chainRules(t, ns, DefaultTable, chain)), chain)
	}
}

func TestOpenInsertsBeforeGuards(t *testing.T) {
	ns := newNetNS(t)
	ctx := context.Background()
	d := newDriver(t, ns, Options{})
	require.NoError(t, d.Ensure(ctx))
	for i := range 3 {
		require.NoError(t, d.Open(ctx, web(fmt.Sprintf("o/%d-tcp", i), 30000+i)))
	}
	for _, chain := range bothChains {
		got := tags(chainRules(t, ns, DefaultTable, chain))
		require.Len(t, got, 5, chain)
		for _, tag := range got[:3] {
			require.True(t, strings.HasPrefix(tag, openTagPrefix), "openings first in %s: %v", chain, got)
		}
		for _, tag := range got[3:] {
			require.True(t, strings.HasPrefix(tag, guardTagPrefix), "guards last in %s: %v", chain, got)
		}
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
	// The kernel stored the forward rules as built: they read back as the
	// same openings.
	require.ElementsMatch(t, in, forwardOpenings(t, ns, DefaultTable))

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
		require.Contains(t, rs, "ct original ip saddr 10.0.0.0/8 ct original ip daddr 198.51.100.7 meta l4proto tcp ct original proto-dst 65535")
		require.Contains(t, rs, "ct original ip6 saddr fd00::/8 ct original ip6 daddr 2001:db8::1 meta l4proto tcp ct original proto-dst 30003")
		require.Contains(t, rs, "meta l4proto tcp ct original proto-dst 30000-32767 ct status dnat ct state new counter packets 0 bytes 0 drop")
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
	before := map[string][]string{}
	for _, chain := range bothChains {
		before[chain] = tags(chainRules(t, ns, DefaultTable, chain))
	}
	for _, o := range []firewall.Opening{
		web("", 30001),
		{ID: "p", Protocol: "sctp", DestIP: "127.0.0.1", DestPort: 30001},
		{ID: "p", Protocol: "tcp", DestIP: "not-an-ip", DestPort: 30001},
		{ID: "p", Protocol: "tcp", DestIP: "127.0.0.1", DestPort: 70000},
		{ID: "p", Protocol: "tcp", DestIP: "127.0.0.1", DestPort: 30001, Source: "::/0"},
	} {
		require.ErrorAs(t, d.Open(ctx, o), &inv, "%+v", o)
	}
	for _, chain := range bothChains {
		require.Equal(t, before[chain], tags(chainRules(t, ns, DefaultTable, chain)), chain)
	}
	require.ErrorAs(t, d.Close(ctx, "bad id"), &inv)
}

// A table that already exists under our name but with a chain berth cannot
// use (a regular chain called "input" or "forward") makes the kernel refuse
// our batch: Open must fail with the attempt named, and leave nothing
// half-done.
func TestOpenFailsOnForeignChain(t *testing.T) {
	for _, foreign := range bothChains {
		t.Run(foreign, func(t *testing.T) {
			ns := newNetNS(t)
			c, err := nft.New(nft.WithNetNSFd(ns.fd()))
			require.NoError(t, err)
			tbl := c.AddTable(&nft.Table{Name: DefaultTable, Family: nft.TableFamilyINet})
			c.AddChain(&nft.Chain{Name: foreign, Table: tbl})
			require.NoError(t, c.Flush())

			d := newDriver(t, ns, Options{})
			err = d.Open(context.Background(), web("f/1-tcp", 30001))
			require.Error(t, err)
			require.Contains(t, err.Error(), `nftables: open "f/1-tcp" (tcp 127.0.0.1 port 30001) in table inet berth`)
			t.Logf("error: %v", err)
			require.Empty(t, chainRules(t, ns, DefaultTable, foreign), "the failed batch must add no rule")
			chains, err := c.ListChainsOfTableFamily(nft.TableFamilyINet)
			require.NoError(t, err)
			require.Len(t, chains, 1, "the failed batch must add no chain")

			err = d.Ensure(context.Background())
			require.ErrorContains(t, err, "nftables: ensure table inet berth chains input and forward")
		})
	}
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

// A table written by a version with only the input chain: Ensure (here via
// a retried Open) adds the forward chain with its guards and a forward rule
// for every opening the old version made, each once.
func TestEnsureUpgradesInputOnlyTable(t *testing.T) {
	ns := newNetNS(t)
	ctx := context.Background()
	d := newDriver(t, ns, Options{})
	a := web("old/a-tcp", 30001)
	b := firewall.Opening{ID: "old/b-udp", Protocol: "udp", DestIP: "0.0.0.0", DestPort: 30002, Source: "10.0.0.0/8"}

	// The old layout, as the previous version's queueEnsure and Open wrote it.
	c, err := nft.New(nft.WithNetNSFd(ns.fd()))
	require.NoError(t, err)
	tbl := c.AddTable(d.nftTable())
	accept := nft.ChainPolicyAccept
	in := c.AddChain(&nft.Chain{Name: inputChain, Table: tbl, Type: nft.ChainTypeFilter, Hooknum: nft.ChainHookInput, Priority: nft.ChainPriorityFilter, Policy: &accept})
	for _, proto := range []string{"tcp", "udp"} {
		p := byte(protoTCP)
		if proto == "udp" {
			p = protoUDP
		}
		c.AddRule(&nft.Rule{Table: tbl, Chain: in, Exprs: guardExprs(p, DefaultPortMin, DefaultPortMax), UserData: userdata.AppendString(nil, userdata.TypeComment, d.guardTag(proto))})
	}
	for _, o := range []firewall.Opening{a, b} {
		m, err := parseOpening(o)
		require.NoError(t, err)
		c.InsertRule(&nft.Rule{Table: tbl, Chain: in, Exprs: m.exprs(), UserData: userdata.AppendString(nil, userdata.TypeComment, openTag(o.ID))})
	}
	require.NoError(t, c.Flush())
	oldInput := chainRules(t, ns, DefaultTable, inputChain)

	require.NoError(t, d.Open(ctx, a), "a retry of an opening the old version made")

	require.Equal(t, tags(oldInput), tags(chainRules(t, ns, DefaultTable, inputChain)), "the input chain is left as it was")
	fwd := tags(chainRules(t, ns, DefaultTable, forwardChain))
	require.Len(t, fwd, 4, "%v", fwd)
	require.ElementsMatch(t, []string{openTag(a.ID), openTag(b.ID)}, fwd[:2])
	require.Equal(t, []string{d.guardTag("tcp"), d.guardTag("udp")}, fwd[2:])
	require.ElementsMatch(t, []firewall.Opening{a, b}, forwardOpenings(t, ns, DefaultTable))

	// Once upgraded, Ensure has nothing left to do: same rules, same handles.
	handles := func() []uint64 {
		t.Helper()
		var hs []uint64
		for _, chain := range bothChains {
			for _, r := range chainRules(t, ns, DefaultTable, chain) {
				hs = append(hs, r.Handle)
			}
		}
		return hs
	}
	before := handles()
	require.NoError(t, d.Ensure(ctx))
	require.Equal(t, before, handles())

	require.NoError(t, d.Close(ctx, b.ID))
	for _, chain := range bothChains {
		require.Zero(t, countTag(t, ns, DefaultTable, chain, openTag(b.ID)), chain)
	}
}

// Docker's path without Docker: a client namespace talks to a "host"
// namespace's published port, which a prerouting DNAT (ours, standing in for
// Docker's) rewrites to a server in a "container" namespace. The packet is
// forwarded, never seen by the input hook, so only the forward chain can
// gate it.
//
//	client 198.51.100.2 --- 198.51.100.1 host 203.0.113.1 --- 203.0.113.2 container
func TestForwardDNATTraffic(t *testing.T) {
	client, host, ctr := newNetNS(t), newNetNS(t), newNetNS(t)
	ctx := context.Background()
	link(t, host, "to-client", "198.51.100.1/30", client, "eth0", "198.51.100.2/30")
	link(t, host, "to-ctr", "203.0.113.1/30", ctr, "eth0", "203.0.113.2/30")
	ipIn(t, client, "route", "add", "default", "via", "198.51.100.1")
	ipIn(t, ctr, "route", "add", "default", "via", "203.0.113.1")
	enableForwarding(t, host)

	hostIP, ctrIP := netip.MustParseAddr("198.51.100.1"), netip.MustParseAddr("203.0.113.2")
	const (
		tcpPublished = 31000 // -> container 8080, in the guarded range
		udpPublished = 31001 // -> container 8053
		outside      = 29999 // -> container 8080, outside the range
		routed       = 31500 // served by the container itself, reached without DNAT
	)
	listenTCP(t, ctr, "tcp4", "203.0.113.2:8080")
	listenTCP(t, ctr, "tcp4", fmt.Sprintf("203.0.113.2:%d", routed))
	listenUDPEcho(t, ctr, "203.0.113.2:8053")
	publish(t, host, protoTCP, hostIP, tcpPublished, ctrIP, 8080)
	publish(t, host, protoUDP, hostIP, udpPublished, ctrIP, 8053)
	publish(t, host, protoTCP, hostIP, outside, ctrIP, 8080)

	tcpAddr := fmt.Sprintf("198.51.100.1:%d", tcpPublished)
	udpAddr := fmt.Sprintf("198.51.100.1:%d", udpPublished)
	outsideAddr := fmt.Sprintf("198.51.100.1:%d", outside)
	routedAddr := fmt.Sprintf("203.0.113.2:%d", routed)

	// Without berth everything gets through. This also waits for the links,
	// so that a timeout further down can only be a drop.
	reachable := func(f func() error) func() bool { return func() bool { return f() == nil } }
	for what, probe := range map[string]func() error{
		"tcp published": func() error { return dialTCP(client, "tcp4", tcpAddr) },
		"udp published": func() error { return udpEcho(client, udpAddr) },
		"tcp outside":   func() error { return dialTCP(client, "tcp4", outsideAddr) },
		"tcp routed":    func() error { return dialTCP(client, "tcp4", routedAddr) },
	} {
		require.Eventually(t, reachable(probe), 10*time.Second, 50*time.Millisecond, "%s is not reachable even without berth: the test topology is broken", what)
	}

	d := newDriver(t, host, Options{})
	require.NoError(t, d.Ensure(ctx))
	guard := d.guardTag("tcp")
	requireBlocked(t, dialTCP(client, "tcp4", tcpAddr), "tcp published before Open")
	requireBlocked(t, udpEcho(client, udpAddr), "udp published before Open")
	require.NotZero(t, packets(t, host, forwardChain, guard), "the forward guard dropped it")
	require.Zero(t, packets(t, host, inputChain, guard), "input never saw the DNAT'd packet")
	require.NoError(t, dialTCP(client, "tcp4", outsideAddr), "a published port outside the range is not guarded")
	require.NoError(t, dialTCP(client, "tcp4", routedAddr), "routed traffic that was not DNAT'd is not guarded")

	// Openings name the published address and port, as the client sees them,
	// not the container's.
	o := firewall.Opening{ID: "ctr/8080-tcp", Protocol: "tcp", DestIP: "198.51.100.1", DestPort: tcpPublished}
	u := firewall.Opening{ID: "ctr/8053-udp", Protocol: "udp", DestIP: "198.51.100.1", DestPort: udpPublished, Source: "198.51.100.0/24"}
	require.NoError(t, d.Open(ctx, o))
	require.NoError(t, d.Open(ctx, u))
	require.NoError(t, dialTCP(client, "tcp4", tcpAddr), "tcp published after Open")
	require.NoError(t, udpEcho(client, udpAddr), "udp published after Open")

	// Retries, from this Driver and a restarted one, add nothing.
	require.NoError(t, d.Open(ctx, o))
	require.NoError(t, newDriver(t, host, Options{}).Open(ctx, o))
	for _, chain := range bothChains {
		require.Equal(t, 1, countTag(t, host, DefaultTable, chain, openTag(o.ID)), chain)
		require.Len(t, chainRules(t, host, DefaultTable, chain), 4, "two openings and two guards in %s", chain)
	}
	if rs := ruleset(t, host); rs != "" {
		t.Logf("host nft list ruleset while open:\n%s", rs)
	}

	require.NoError(t, d.Close(ctx, o.ID))
	require.NoError(t, d.Close(ctx, u.ID))
	requireBlocked(t, dialTCP(client, "tcp4", tcpAddr), "tcp published after Close")
	requireBlocked(t, udpEcho(client, udpAddr), "udp published after Close")
	require.NoError(t, d.Close(ctx, o.ID), "closing twice is fine")

	// An allowed network passes the forward guard without an opening (the
	// load balancer of another machine), and leaves with the list.
	allowed := newDriver(t, host, Options{Allow: []string{"198.51.100.0/30"}})
	require.NoError(t, allowed.Ensure(ctx))
	require.NoError(t, dialTCP(client, "tcp4", tcpAddr), "tcp published from an allowed network")
	require.NoError(t, d.Ensure(ctx))
	requireBlocked(t, dialTCP(client, "tcp4", tcpAddr), "tcp published once the network is no longer allowed")

	// The original destination is what is matched: another address, or the
	// container's own port, opens nothing.
	require.NoError(t, d.Open(ctx, firewall.Opening{ID: "other-ip", Protocol: "tcp", DestIP: "198.51.100.9", DestPort: tcpPublished}))
	require.NoError(t, d.Open(ctx, firewall.Opening{ID: "ctr-port", Protocol: "tcp", DestIP: "203.0.113.2", DestPort: 8080}))
	requireBlocked(t, dialTCP(client, "tcp4", tcpAddr), "tcp opened for other destinations")
	// 0.0.0.0 means "published on every address".
	require.NoError(t, d.Open(ctx, firewall.Opening{ID: "any-ip", Protocol: "tcp", DestIP: "0.0.0.0", DestPort: tcpPublished}))
	require.NoError(t, dialTCP(client, "tcp4", tcpAddr), "tcp opened on 0.0.0.0")
}

// dialFrom connects from src inside ns.
func dialFrom(ns netNS, src, addr string) error {
	return inNetNS(ns, func() error {
		d := net.Dialer{Timeout: dialTimeout, LocalAddr: &net.TCPAddr{IP: net.ParseIP(src)}}
		c, err := d.Dial("tcp4", addr)
		if err != nil {
			return err
		}
		return c.Close()
	})
}

func TestAllow(t *testing.T) {
	ns := newNetNS(t)
	ctx := context.Background()
	ipIn(t, ns, "addr", "add", "192.0.2.1/32", "dev", "lo")
	ipIn(t, ns, "addr", "add", "198.51.100.7/32", "dev", "lo")
	listenTCP(t, ns, "tcp4", "0.0.0.0:31000")
	const addr = "192.0.2.1:31000"

	_, err := New(Options{Allow: []string{"0.0.0.0/0"}})
	require.ErrorContains(t, err, "not everyone", "allowing everyone is turning the firewall off, said plainly")
	_, err = New(Options{Allow: []string{"lan"}})
	require.ErrorContains(t, err, `allow "lan"`)

	// Over lo every packet is the machine's own, so "local" is tried last.
	d := newDriver(t, ns, Options{Allow: []string{"192.0.2.0/24"}})
	require.NoError(t, d.Open(ctx, web("kept/31001-tcp", 31001)))
	require.NoError(t, dialFrom(ns, "192.0.2.1", addr), "from the allowed network")
	requireBlocked(t, dialFrom(ns, "198.51.100.7", addr), "from elsewhere")
	in := tags(chainRules(t, ns, DefaultTable, inputChain))
	require.Equal(t, []string{openTag("kept/31001-tcp"), d.allow.tag("192.0.2.0/24"), d.guardTag("tcp"), d.guardTag("udp")}, in,
		"openings first, then the allow rule, then the guards")
	require.Equal(t, in, tags(chainRules(t, ns, DefaultTable, forwardChain)))

	// The same list again changes nothing; a new list replaces the old
	// rules and keeps the openings in front.
	before := chainRules(t, ns, DefaultTable, inputChain)
	require.NoError(t, newDriver(t, ns, Options{Allow: []string{" 192.0.2.7/24 "}}).Ensure(ctx))
	after := chainRules(t, ns, DefaultTable, inputChain)
	require.Equal(t, before[2].Handle, after[2].Handle, "an unchanged list is not rewritten")
	local := newDriver(t, ns, Options{Allow: []string{AllowLocal}})
	require.NoError(t, local.Ensure(ctx))
	require.Equal(t, []string{openTag("kept/31001-tcp"), local.allow.tag(AllowLocal), local.guardTag("tcp"), local.guardTag("udp")},
		tags(chainRules(t, ns, DefaultTable, inputChain)))
	require.Equal(t, []string{openTag("kept/31001-tcp"), local.guardTag("tcp"), local.guardTag("udp")},
		tags(chainRules(t, ns, DefaultTable, forwardChain)), "the machine's own traffic never crosses forward")
	require.NoError(t, dialFrom(ns, "198.51.100.7", addr), "from this machine")
	require.NotZero(t, packets(t, ns, inputChain, local.allow.tag(AllowLocal)))

	// No list is the guards alone, as before allow lists.
	require.NoError(t, newDriver(t, ns, Options{}).Ensure(ctx))
	require.Len(t, chainRules(t, ns, DefaultTable, inputChain), 3)
	requireBlocked(t, dialFrom(ns, "192.0.2.1", addr), "nothing allowed any more")
}
