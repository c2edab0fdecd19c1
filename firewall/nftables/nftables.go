package nftables

import (
	"context"
	"fmt"
	"strings"
	"sync"

	nft "github.com/google/nftables"
	"github.com/google/nftables/expr"
	"github.com/google/nftables/userdata"
	"github.com/mdlayher/netlink"
	"golang.org/x/sys/unix"

	"github.com/berth-dev/berth/firewall"
)

// Defaults for Options fields left zero.
const (
	DefaultTable   = "berth"
	DefaultPortMin = 30000
	DefaultPortMax = 32767
)

const (
	inputChain   = "input"
	forwardChain = "forward"

	openTagPrefix  = "berth:open:"
	guardTagPrefix = "berth:guard"
	allowTagPrefix = "berth:allow:"

	// maxIDLen keeps the tag (prefix + ID + NUL + TLV header) well inside the
	// kernel's 256-byte rule user-data limit.
	maxIDLen = 120
)

var _ firewall.Driver = (*Driver)(nil)

// Options configure a Driver.
type Options struct {
	// Table is the name of the inet table berth owns; "" means DefaultTable.
	Table string
	// PortMin and PortMax bound the published-port range that is closed
	// unless opened; both 0 means DefaultPortMin..DefaultPortMax.
	PortMin, PortMax int
	// NetNSFd is an open fd of the network namespace to manage; 0 means the
	// namespace of the calling process. The caller keeps it open while the
	// Driver is in use.
	NetNSFd int
	// Allow names sources the guards never stop, because berth itself
	// needs them to reach an instance before its opening: the health check
	// and the load balancer. Each entry is "local" (traffic from this
	// machine, i.e. arriving on lo) or a CIDR or IP (a load balancer or
	// worker elsewhere).
	Allow []string
}

// Driver implements firewall.Driver with nftables. It is safe for concurrent
// use; calls are serialized so that a check-then-insert cannot race a twin
// call from the same process.
type Driver struct {
	table   string
	portMin uint16
	portMax uint16
	netns   int
	allow   allowList

	mu sync.Mutex
}

// New checks opts and returns a Driver. It touches no netlink state: the
// table is created by Ensure (which Open calls).
func New(opts Options) (*Driver, error) {
	if opts.Table == "" {
		opts.Table = DefaultTable
	}
	if !validTableName(opts.Table) {
		return nil, fmt.Errorf("nftables: table name %q: want 1-64 characters of [A-Za-z0-9_-] starting with a letter", opts.Table)
	}
	if opts.PortMin == 0 && opts.PortMax == 0 {
		opts.PortMin, opts.PortMax = DefaultPortMin, DefaultPortMax
	}
	if opts.PortMin < 1 || opts.PortMax > 65535 || opts.PortMin > opts.PortMax {
		return nil, fmt.Errorf("nftables: port range %d-%d: want 1 <= min <= max <= 65535", opts.PortMin, opts.PortMax)
	}
	if opts.NetNSFd < 0 {
		return nil, fmt.Errorf("nftables: netns fd %d is negative", opts.NetNSFd)
	}
	allow, err := parseAllow(opts.Allow)
	if err != nil {
		return nil, err
	}
	return &Driver{
		table:   opts.Table,
		portMin: uint16(opts.PortMin),
		portMax: uint16(opts.PortMax),
		netns:   opts.NetNSFd,
		allow:   allow,
	}, nil
}

// Table returns the name of the inet table the Driver owns.
func (d *Driver) Table() string { return d.table }

// PortRange returns the published-port range the guard closes.
func (d *Driver) PortRange() (lo, hi int) { return int(d.portMin), int(d.portMax) }

// Ensure creates the table, the input and forward chains and the guard rules
// if they are missing, and replaces guards left by a different port range.
// A table from a version without the forward chain gets one, with a forward
// rule for every opening already in the input chain, so that the new guard
// does not cut off what was open before. It is cheap and idempotent, so it
// is safe to call before every Open.
func (d *Driver) Ensure(ctx context.Context) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	c, rules, err := d.read(ctx)
	if err != nil {
		return err
	}
	if _, err := d.queueEnsure(c, rules); err != nil {
		return err
	}
	if err := c.Flush(); err != nil {
		return fmt.Errorf("nftables: ensure table inet %s chains %s and %s with guards for ports %d-%d: %w", d.table, inputChain, forwardChain, d.portMin, d.portMax, err)
	}
	return nil
}

// Open allows o, with one rule in each chain, both tagged with o.ID. A chain
// that already has a rule tagged with o.ID is left as it is, so a retried
// Open adds nothing; an opening whose fields changed under the same ID must
// be Closed first.
func (d *Driver) Open(ctx context.Context, o firewall.Opening) error {
	m, err := parseOpening(o)
	if err != nil {
		return err
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	c, rules, err := d.read(ctx)
	if err != nil {
		return err
	}
	// Ensure and insert share one batch: the kernel applies a batch
	// atomically, so a half-set-up table is never visible.
	backfilled, err := d.queueEnsure(c, rules)
	if err != nil {
		return err
	}
	tag := openTag(o.ID)
	// InsertRule without a position prepends, which keeps every opening in
	// front of the guards however many there are.
	if len(withTag(rules.input, tag)) == 0 {
		c.InsertRule(taggedRule(d.nftChain(inputChain), m.exprs(), tag))
	}
	// backfilled: queueEnsure already copied an input rule with this tag
	// into this batch, which is the rule the retry must keep.
	if len(withTag(rules.forward, tag)) == 0 && !backfilled[tag] {
		c.InsertRule(taggedRule(d.nftChain(forwardChain), m.forwardExprs(), tag))
	}
	if err := c.Flush(); err != nil {
		return fmt.Errorf("nftables: open %q (%s %s port %d) in table inet %s: %w", o.ID, o.Protocol, o.DestIP, o.DestPort, d.table, err)
	}
	return nil
}

// Close removes the rule(s) tagged with id from both chains. An id with no
// rule, or a missing table, is not an error.
func (d *Driver) Close(ctx context.Context, id string) error {
	if err := validateID(id); err != nil {
		return err
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	c, rules, err := d.read(ctx)
	if err != nil {
		return err
	}
	tag := openTag(id)
	if rules.count(tag) == 0 {
		return nil
	}
	for _, chain := range []string{inputChain, forwardChain} {
		for _, r := range withTag(rules.of(chain), tag) {
			if err := c.DelRule(&nft.Rule{Table: d.nftTable(), Chain: d.nftChain(chain), Handle: r.Handle}); err != nil {
				return fmt.Errorf("nftables: close %q: queue delete of rule handle %d in chain %s: %w", id, r.Handle, chain, err)
			}
		}
	}
	if err := c.Flush(); err != nil {
		// Someone else (a twin process, an operator) may have deleted the
		// rule between our read and our delete; what matters is that it is
		// gone, so look again before reporting failure.
		if again, lerr := d.rules(ctx, c); lerr == nil && again.count(tag) == 0 {
			return nil
		}
		return fmt.Errorf("nftables: close %q: delete rule(s) from table inet %s: %w", id, d.table, err)
	}
	return nil
}

// List returns the openings currently applied, read back from the kernel.
// A missing table lists as no openings. Source is returned in canonical
// prefix form (e.g. "10.0.0.0/8", "192.0.2.7/32"). The input chain is the
// record: Open writes both chains in one batch, and Ensure copies input
// openings that lack a forward rule, so the forward chain only mirrors it.
func (d *Driver) List(ctx context.Context) ([]firewall.Opening, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	_, rules, err := d.read(ctx)
	if err != nil {
		return nil, err
	}
	var out []firewall.Opening
	for _, r := range rules.input {
		tag := ruleTag(r)
		id, ok := strings.CutPrefix(tag, openTagPrefix)
		if !ok {
			continue
		}
		o, err := parseRule(id, r.Exprs)
		if err != nil {
			return nil, fmt.Errorf("nftables: list: rule handle %d tagged %q in table inet %s: %w", r.Handle, tag, d.table, err)
		}
		out = append(out, o)
	}
	return out, nil
}

// Remove deletes the whole table, openings and guards included, which opens
// the port range again. A missing table is not an error.
func (d *Driver) Remove(ctx context.Context) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	c, err := d.conn(ctx)
	if err != nil {
		return err
	}
	exists, err := d.tableExists(c)
	if err != nil {
		return err
	}
	if !exists {
		return nil
	}
	c.DelTable(d.nftTable())
	if err := c.Flush(); err != nil {
		return fmt.Errorf("nftables: remove table inet %s: %w", d.table, err)
	}
	return nil
}

// read opens a connection and reads the table's rules; the caller holds mu.
func (d *Driver) read(ctx context.Context) (*nft.Conn, tableRules, error) {
	c, err := d.conn(ctx)
	if err != nil {
		return nil, tableRules{}, err
	}
	rules, err := d.rules(ctx, c)
	return c, rules, err
}

// taggedRule is a rule of ch carrying tag as its comment, which is how
// berth finds its own rules again.
func taggedRule(ch *nft.Chain, exprs []expr.Any, tag string) *nft.Rule {
	return &nft.Rule{Table: ch.Table, Chain: ch, Exprs: exprs, UserData: userdata.AppendString(nil, userdata.TypeComment, tag)}
}

// conn returns a fresh netlink Conn per call: Conn buffers queued messages
// and keeps a sticky marshalling error, so reusing one across calls could
// send a failed call's leftovers with the next call's batch.
func (d *Driver) conn(ctx context.Context) (*nft.Conn, error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("nftables: %w", err)
	}
	var opts []nft.ConnOption
	if d.netns != 0 {
		opts = append(opts, nft.WithNetNSFd(d.netns))
	}
	if dl, ok := ctx.Deadline(); ok {
		// netlink calls take no context; a socket deadline is how a stuck
		// kernel reply still honours the caller's deadline.
		opts = append(opts, nft.WithSockOptions(func(c *netlink.Conn) error { return c.SetDeadline(dl) }))
	}
	c, err := nft.New(opts...)
	if err != nil {
		return nil, fmt.Errorf("nftables: open netlink connection: %w", err)
	}
	return c, nil
}

// rawConn is a plain netlink connection set up like conn's, for dumpRules.
func (d *Driver) rawConn(ctx context.Context) (*netlink.Conn, error) {
	nl, err := netlink.Dial(unix.NETLINK_NETFILTER, &netlink.Config{NetNS: d.netns})
	if err != nil {
		return nil, fmt.Errorf("nftables: open netlink connection: %w", err)
	}
	if dl, ok := ctx.Deadline(); ok {
		if err := nl.SetDeadline(dl); err != nil {
			_ = nl.Close()
			return nil, fmt.Errorf("nftables: set netlink deadline: %w", err)
		}
	}
	return nl, nil
}

func (d *Driver) nftTable() *nft.Table {
	return &nft.Table{Name: d.table, Family: nft.TableFamilyINet}
}

func (d *Driver) nftChain(name string) *nft.Chain {
	return &nft.Chain{Name: name, Table: d.nftTable()}
}

func (d *Driver) tableExists(c *nft.Conn) (bool, error) {
	// A dump, rather than a get by name: a get of a missing table fails with
	// an error the library flattens to text, so "absent" could not be told
	// apart from a real failure.
	tables, err := c.ListTablesOfFamily(nft.TableFamilyINet)
	if err != nil {
		return false, fmt.Errorf("nftables: list inet tables: %w", err)
	}
	for _, t := range tables {
		if t.Name == d.table {
			return true, nil
		}
	}
	return false, nil
}

// tableRules holds the current rules of our chains; a chain that does not
// exist yet has none.
type tableRules struct {
	input, forward []*nft.Rule
}

func (r tableRules) of(chain string) []*nft.Rule {
	if chain == forwardChain {
		return r.forward
	}
	return r.input
}

// count returns how many rules of either chain carry tag.
func (r tableRules) count(tag string) int {
	return len(withTag(r.input, tag)) + len(withTag(r.forward, tag))
}

// rules returns the rules of our chains.
func (d *Driver) rules(ctx context.Context, c *nft.Conn) (tableRules, error) {
	var out tableRules
	chains, err := c.ListChainsOfTableFamily(nft.TableFamilyINet)
	if err != nil {
		return out, fmt.Errorf("nftables: list inet chains: %w", err)
	}
	for _, ch := range chains {
		if ch.Table == nil || ch.Table.Name != d.table {
			continue
		}
		var err error
		switch ch.Name {
		case inputChain:
			out.input, err = c.GetRules(d.nftTable(), d.nftChain(inputChain))
		case forwardChain:
			// See dumpRules for why not GetRules.
			out.forward, err = d.dumpForward(ctx)
		default:
			continue
		}
		if err != nil {
			return out, fmt.Errorf("nftables: get rules of table inet %s chain %s: %w", d.table, ch.Name, err)
		}
	}
	return out, nil
}

func (d *Driver) dumpForward(ctx context.Context) ([]*nft.Rule, error) {
	nl, err := d.rawConn(ctx)
	if err != nil {
		return nil, err
	}
	defer nl.Close()
	return dumpRules(nl, d.nftTable(), forwardChain)
}

// Why the forward chain runs at priority filter - 1, before the filter
// FORWARD chain Docker installs through iptables(-nft) at priority filter:
// on one hook every base chain of every table (and of legacy x_tables)
// sees the packet in priority order, a drop anywhere is final, and an
// accept only ends the chain that says it. So the guard's drop wins over
// Docker's accept whichever chain runs first, and an opening's accept only
// skips our guard, it cannot override Docker's own isolation drops; the
// order is not what makes this correct. Running first just makes the
// outcome independent of the order tables were loaded in, and lets our
// counters see every DNAT'd packet before somebody else drops it.
var forwardPriority = nft.ChainPriorityRef(*nft.ChainPriorityFilter - 1)

// queueEnsure queues, on c, what it takes to bring the table to shape given
// its current rules, and returns the open tags it copied from the input
// chain into the forward chain. Table and chain adds are queued every time:
// the kernel treats a create of an existing object without NLM_F_EXCL as a
// no-op (and re-asserts the chain policy), so nothing needs to be read for
// them.
func (d *Driver) queueEnsure(c *nft.Conn, rules tableRules) (map[string]bool, error) {
	t := c.AddTable(d.nftTable())
	// Policy accept on both: the chains exist to drop the guarded range, and
	// everything else must reach whatever else the host runs unchanged.
	policy := nft.ChainPolicyAccept
	in := c.AddChain(&nft.Chain{
		Name:     inputChain,
		Table:    t,
		Type:     nft.ChainTypeFilter,
		Hooknum:  nft.ChainHookInput,
		Priority: nft.ChainPriorityFilter,
		Policy:   &policy,
	})
	// Docker publishes a port with DNAT in prerouting, after which the
	// packet is routed to the container and crosses forward, never input.
	fwd := c.AddChain(&nft.Chain{
		Name:     forwardChain,
		Table:    t,
		Type:     nft.ChainTypeFilter,
		Hooknum:  nft.ChainHookForward,
		Priority: forwardPriority,
		Policy:   &policy,
	})
	if err := d.queueGuards(c, in, rules.input, guardExprs, d.allow.inputRules()); err != nil {
		return nil, err
	}
	if err := d.queueGuards(c, fwd, rules.forward, forwardGuardExprs, d.allow.forwardRules()); err != nil {
		return nil, err
	}
	return d.queueBackfill(c, fwd, rules)
}

// queueBackfill copies into the forward chain every input opening without a
// forward twin. Only a table written by a version before the forward chain
// has any; without them the new forward guard would close what was open.
func (d *Driver) queueBackfill(c *nft.Conn, fwd *nft.Chain, rules tableRules) (map[string]bool, error) {
	done := map[string]bool{}
	for _, r := range rules.input {
		tag := ruleTag(r)
		id, ok := strings.CutPrefix(tag, openTagPrefix)
		if !ok || done[tag] || len(withTag(rules.forward, tag)) > 0 {
			continue
		}
		o, err := parseRule(id, r.Exprs)
		if err != nil {
			return nil, fmt.Errorf("nftables: copy opening to chain %s: rule handle %d tagged %q in table inet %s: %w", forwardChain, r.Handle, tag, d.table, err)
		}
		m, err := parseOpening(o)
		if err != nil {
			return nil, fmt.Errorf("nftables: copy opening to chain %s: rule handle %d tagged %q in table inet %s: %w", forwardChain, r.Handle, tag, d.table, err)
		}
		c.InsertRule(taggedRule(fwd, m.forwardExprs(), tag))
		done[tag] = true
	}
	return done, nil
}

// queueGuards makes the guards of ch, whose current rules are rules, those
// of d's port range, built by build, behind the allow rules of allow. Both
// are appended, after every opening. When either differs from what is
// there (a new port range or allow list), all of them are deleted and
// written again in the same batch, so the allow rules always sit before
// the guards and the chain never shows a half of each.
func (d *Driver) queueGuards(c *nft.Conn, ch *nft.Chain, rules []*nft.Rule, build func(proto byte, portMin, portMax uint16) []expr.Any, allow []allowRule) error {
	want := map[string]byte{
		d.guardTag("tcp"): protoTCP,
		d.guardTag("udp"): protoUDP,
	}
	wantAllow := map[string]bool{}
	for _, a := range allow {
		wantAllow[a.tag] = true
	}
	var ours []*nft.Rule
	have := map[string]int{}
	for _, r := range rules {
		tag := ruleTag(r)
		if strings.HasPrefix(tag, guardTagPrefix) || strings.HasPrefix(tag, allowTagPrefix) {
			ours = append(ours, r)
			have[tag]++
		}
	}
	intact := len(ours) == len(want)+len(wantAllow)
	for tag := range want {
		intact = intact && have[tag] == 1
	}
	for tag := range wantAllow {
		intact = intact && have[tag] == 1
	}
	if intact {
		return nil
	}
	for _, r := range ours {
		if err := c.DelRule(&nft.Rule{Table: ch.Table, Chain: ch, Handle: r.Handle}); err != nil {
			return fmt.Errorf("nftables: queue delete of stale guard handle %d in chain %s: %w", r.Handle, ch.Name, err)
		}
	}
	for _, a := range allow {
		c.AddRule(taggedRule(ch, a.exprs, a.tag))
	}
	for _, proto := range []string{"tcp", "udp"} {
		tag := d.guardTag(proto)
		c.AddRule(taggedRule(ch, build(want[tag], d.portMin, d.portMax), tag))
	}
	return nil
}

// guardTag names the guard of proto. It carries the allow list's key, so
// that a changed list no longer matches and the guards are rebuilt with it.
func (d *Driver) guardTag(proto string) string {
	tag := fmt.Sprintf("%s:%s:%d-%d", guardTagPrefix, proto, d.portMin, d.portMax)
	if d.allow.key != "" {
		tag += ":" + d.allow.key
	}
	return tag
}

func openTag(id string) string { return openTagPrefix + id }

func ruleTag(r *nft.Rule) string {
	s, _ := userdata.GetString(r.UserData, userdata.TypeComment)
	return s
}

func withTag(rules []*nft.Rule, tag string) []*nft.Rule {
	var out []*nft.Rule
	for _, r := range rules {
		if ruleTag(r) == tag {
			out = append(out, r)
		}
	}
	return out
}
