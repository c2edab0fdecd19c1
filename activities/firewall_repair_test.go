package activities

import (
	"context"
	"sort"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/berth-dev/berth/firewall"
)

// rules is a firewall.Driver over a map, for the repair's bookkeeping;
// firewall/nftables tests the real rules and the e2e suite the repair on
// them.
type rules map[string]firewall.Opening

func (r rules) Open(_ context.Context, o firewall.Opening) error { r[o.ID] = o; return nil }
func (r rules) Close(_ context.Context, id string) error         { delete(r, id); return nil }
func (r rules) List(context.Context) ([]firewall.Opening, error) {
	var out []firewall.Opening
	for _, o := range r {
		out = append(out, o)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out, nil
}

// A repair opens what the records want and the rules lack, closes rules
// no live opening accounts for, spares those a run may be making, and a
// second pass finds nothing.
func TestFirewallRepair(t *testing.T) {
	ctx := context.Background()
	web := func(id string, port int) firewall.Opening {
		return firewall.Opening{ID: id, Protocol: "tcp", DestIP: "10.0.0.1", DestPort: port}
	}
	held := rules{"kept/1-tcp": web("kept/1-tcp", 20001), "stray/1-tcp": web("stray/1-tcp", 20002), "making/1-tcp": web("making/1-tcp", 20003)}
	fw := &Firewall{Driver: held}
	in := FirewallRepairInput{Want: []firewall.Opening{web("kept/1-tcp", 20001), web("gone/1-tcp", 20004)},
		Keep: []string{"kept/1-tcp", "gone/1-tcp", "making/1-tcp"}}

	rep, err := fw.Repair(ctx, in)
	require.NoError(t, err)
	require.Equal(t, FirewallRepair{Reopened: []string{"gone/1-tcp"}, Closed: []string{"stray/1-tcp"}}, rep)
	ids, _ := held.List(ctx)
	require.Equal(t, []firewall.Opening{web("gone/1-tcp", 20004), web("kept/1-tcp", 20001), web("making/1-tcp", 20003)}, ids)

	rep, err = fw.Repair(ctx, in)
	require.NoError(t, err)
	require.Equal(t, FirewallRepair{Reopened: []string{}, Closed: []string{}}, rep, "a repaired firewall needs nothing")

	rep, err = (&Firewall{Driver: firewall.None{}}).Repair(ctx, in)
	require.NoError(t, err)
	require.Empty(t, rep.Reopened, "a driver that keeps no rules is never 'missing' them")
}
