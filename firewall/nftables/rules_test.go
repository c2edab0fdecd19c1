package nftables

import (
	"strings"
	"testing"

	"github.com/google/nftables/expr"
	"github.com/stretchr/testify/require"

	"github.com/berth-dev/berth/firewall"
)

// These run anywhere: no netlink, no root.

func TestNewOptions(t *testing.T) {
	d, err := New(Options{})
	require.NoError(t, err)
	require.Equal(t, DefaultTable, d.Table())
	lo, hi := d.PortRange()
	require.Equal(t, [2]int{DefaultPortMin, DefaultPortMax}, [2]int{lo, hi})

	for _, o := range []Options{
		{Table: "has space"},
		{Table: "1starts-with-digit"},
		{Table: strings.Repeat("t", 65)},
		{PortMin: 0, PortMax: 10},
		{PortMin: 10, PortMax: 9},
		{PortMin: 1, PortMax: 65536},
		{NetNSFd: -1},
	} {
		_, err := New(o)
		require.Error(t, err, "%+v", o)
	}
}

func TestValidateOpening(t *testing.T) {
	ok := firewall.Opening{ID: "acme-dev-shop-web-3/8080-tcp", Protocol: "tcp", DestIP: "192.0.2.1", DestPort: 30080}
	_, err := parseOpening(ok)
	require.NoError(t, err)

	cases := map[string]struct {
		mut   func(*firewall.Opening)
		field string
	}{
		"empty id":        {func(o *firewall.Opening) { o.ID = "" }, "id"},
		"long id":         {func(o *firewall.Opening) { o.ID = strings.Repeat("a", maxIDLen+1) }, "id"},
		"id with space":   {func(o *firewall.Opening) { o.ID = "a b" }, "id"},
		"id with quote":   {func(o *firewall.Opening) { o.ID = `a"b` }, "id"},
		"id non-ascii":    {func(o *firewall.Opening) { o.ID = "café" }, "id"},
		"protocol upper":  {func(o *firewall.Opening) { o.Protocol = "TCP" }, "protocol"},
		"protocol empty":  {func(o *firewall.Opening) { o.Protocol = "" }, "protocol"},
		"protocol icmp":   {func(o *firewall.Opening) { o.Protocol = "icmp" }, "protocol"},
		"port zero":       {func(o *firewall.Opening) { o.DestPort = 0 }, "destPort"},
		"port negative":   {func(o *firewall.Opening) { o.DestPort = -1 }, "destPort"},
		"port too big":    {func(o *firewall.Opening) { o.DestPort = 65536 }, "destPort"},
		"ip empty":        {func(o *firewall.Opening) { o.DestIP = "" }, "destIP"},
		"ip hostname":     {func(o *firewall.Opening) { o.DestIP = "localhost" }, "destIP"},
		"ip cidr":         {func(o *firewall.Opening) { o.DestIP = "192.0.2.0/24" }, "destIP"},
		"ip zone":         {func(o *firewall.Opening) { o.DestIP = "fe80::1%eth0" }, "destIP"},
		"source garbage":  {func(o *firewall.Opening) { o.Source = "10.0.0.0/33" }, "source"},
		"source family":   {func(o *firewall.Opening) { o.Source = "2001:db8::/32" }, "source"},
		"source hostname": {func(o *firewall.Opening) { o.Source = "example.com" }, "source"},
	}
	for name, c := range cases {
		t.Run(name, func(t *testing.T) {
			o := ok
			c.mut(&o)
			_, err := parseOpening(o)
			var inv *InvalidOpeningError
			require.ErrorAs(t, err, &inv)
			require.Equal(t, c.field, inv.Field)
			require.Contains(t, err.Error(), "nftables: invalid opening")
		})
	}

	longest := ok
	longest.ID = strings.Repeat("A", maxIDLen-len("_./:-9")) + "_./:-9"
	_, err = parseOpening(longest)
	require.NoError(t, err)
}

func TestExprsRoundTrip(t *testing.T) {
	for _, o := range []firewall.Opening{
		{ID: "a", Protocol: "tcp", DestIP: "192.0.2.1", DestPort: 1},
		{ID: "b", Protocol: "udp", DestIP: "0.0.0.0", DestPort: 65535, Source: "10.0.0.0/8"},
		{ID: "c", Protocol: "tcp", DestIP: "192.0.2.1", DestPort: 30000, Source: "198.51.100.0/23"},
		{ID: "d", Protocol: "udp", DestIP: "2001:db8::5", DestPort: 443, Source: "2001:db8:2::/47"},
		{ID: "e", Protocol: "tcp", DestIP: "::", DestPort: 80, Source: "::1/128"},
	} {
		m, err := parseOpening(o)
		require.NoError(t, err)
		got, err := parseRule(o.ID, m.exprs())
		require.NoError(t, err)
		require.Equal(t, o, got)
		got, err = parseRule(o.ID, m.forwardExprs())
		require.NoError(t, err)
		require.Equal(t, o, got, "forward rule")
	}
}

func TestParseRuleRefusesForeignShapes(t *testing.T) {
	_, err := parseRule("g", guardExprs(protoTCP, 30000, 32767))
	require.Error(t, err, "a guard is not an opening")
	_, err = parseRule("g", forwardGuardExprs(protoTCP, 30000, 32767))
	require.Error(t, err, "a forward guard is not an opening")
	_, err = parseRule("empty", nil)
	require.Error(t, err)

	m, err := parseOpening(firewall.Opening{ID: "m", Protocol: "tcp", DestIP: "192.0.2.1", DestPort: 30000, Source: "10.0.0.0/8"})
	require.NoError(t, err)
	in, fwd := m.exprs(), m.forwardExprs()
	// Packet source with conntrack destination and port: nothing berth builds.
	mixed := append(append([]expr.Any{}, in[:5]...), fwd[5:]...)
	_, err = parseRule("m", mixed)
	require.ErrorContains(t, err, "mixes packet and conntrack")

	reply := append([]expr.Any{}, fwd...)
	reply[len(reply)-4] = &expr.Ct{Register: reg, Key: expr.CtKeyPROTODST, Direction: 1}
	_, err = parseRule("m", reply)
	require.ErrorContains(t, err, "direction")

	// An expression the dump could not name is kept, so the rule is refused
	// instead of read without it.
	_, err = parseRule("m", append(append([]expr.Any{}, fwd[:len(fwd)-1]...), &opaque{name: "log"}, fwd[len(fwd)-1]))
	require.Error(t, err)
}

func TestPrefixLen(t *testing.T) {
	for mask, want := range map[string]int{"\xff\xff\xff\xff": 32, "\xff\xf0\x00\x00": 12, "\x00\x00\x00\x00": 0, "\xfe\x00\x00\x00": 7} {
		n, ok := prefixLen([]byte(mask))
		require.True(t, ok)
		require.Equal(t, want, n)
	}
	for _, mask := range []string{"\xff\x00\xff\x00", "\xf4\x00\x00\x00", "\x0f\x00\x00\x00"} {
		_, ok := prefixLen([]byte(mask))
		require.False(t, ok, "%x", mask)
	}
}
