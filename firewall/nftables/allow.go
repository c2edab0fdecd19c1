package nftables

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"net/netip"
	"sort"
	"strings"

	"github.com/google/nftables/expr"
	"golang.org/x/sys/unix"

	"github.com/berth-dev/berth/firewall"
)

// AllowLocal is the Allow entry for traffic from the machine itself.
const AllowLocal = "local"

// allowList is a parsed Options.Allow.
type allowList struct {
	local bool
	nets  []netip.Prefix
	// key identifies the list in the guards' tags; "" for an empty list,
	// so a table written before allow lists existed keeps its guards.
	key string
}

// allowRule is one accept rule written before a chain's guards.
type allowRule struct {
	tag   string
	exprs []expr.Any
}

// parseAllow checks the entries and puts them in a canonical order, so the
// same list always gives the same key.
func parseAllow(entries []string) (allowList, error) {
	var l allowList
	seen := map[netip.Prefix]bool{}
	for _, e := range entries {
		e = strings.TrimSpace(e)
		if e == "" {
			continue
		}
		if e == AllowLocal {
			l.local = true
			continue
		}
		m, err := parseOpening(sourceOnly(e))
		if err != nil || !m.src.IsValid() {
			return allowList{}, fmt.Errorf("nftables: allow %q: want %q, or a CIDR (e.g. 10.0.0.0/8) or IP that is not everyone", e, AllowLocal)
		}
		if !seen[m.src] {
			seen[m.src] = true
			l.nets = append(l.nets, m.src)
		}
	}
	sort.Slice(l.nets, func(i, j int) bool { return l.nets[i].String() < l.nets[j].String() })
	var parts []string
	if l.local {
		parts = append(parts, AllowLocal)
	}
	for _, p := range l.nets {
		parts = append(parts, p.String())
	}
	if len(parts) > 0 {
		sum := sha256.Sum256([]byte(strings.Join(parts, ",")))
		l.key = "a" + hex.EncodeToString(sum[:4])
	}
	return l, nil
}

// sourceOnly is an opening that only carries a source, so that an allow
// entry is parsed by the same code as an opening's source.
func sourceOnly(source string) firewall.Opening {
	dst := "0.0.0.0"
	if strings.Contains(source, ":") {
		dst = "::"
	}
	return firewall.Opening{ID: "allow", Protocol: "tcp", DestIP: dst, DestPort: 1, Source: source}
}

// inputRules are the input chain's allow rules: lo (the machine itself),
// then each network by the packet's source address.
func (l allowList) inputRules() []allowRule {
	var out []allowRule
	if l.local {
		name := make([]byte, unix.IFNAMSIZ)
		copy(name, "lo")
		out = append(out, allowRule{tag: l.tag(AllowLocal), exprs: []expr.Any{
			&expr.Meta{Key: expr.MetaKeyIIFNAME, Register: reg},
			&expr.Cmp{Op: expr.CmpOpEq, Register: reg, Data: name},
			&expr.Counter{},
			&expr.Verdict{Kind: expr.VerdictAccept},
		}})
	}
	for _, p := range l.nets {
		off := uint32(ip4SaddrOff)
		if p.Addr().Is6() {
			off = ip6SaddrOff
		}
		out = append(out, allowRule{tag: l.tag(p.String()), exprs: sourceAccept(p,
			&expr.Payload{DestRegister: reg, Base: expr.PayloadBaseNetworkHeader, Offset: off, Len: uint32(p.Addr().BitLen() / 8)})})
	}
	return out
}

// forwardRules are the forward chain's: each network by the conntrack
// original source. Traffic the machine sends itself never crosses forward,
// so "local" needs no rule there.
func (l allowList) forwardRules() []allowRule {
	var out []allowRule
	for _, p := range l.nets {
		out = append(out, allowRule{tag: l.tag(p.String()), exprs: sourceAccept(p,
			&expr.Ct{Register: reg, Key: expr.CtKeySRC, Direction: ctDirOriginal})})
	}
	return out
}

func (l allowList) tag(entry string) string { return allowTagPrefix + l.key + ":" + entry }

// sourceAccept accepts what comes from p, its address read by load.
func sourceAccept(p netip.Prefix, load expr.Any) []expr.Any {
	nfproto := byte(unix.NFPROTO_IPV4)
	if p.Addr().Is6() {
		nfproto = unix.NFPROTO_IPV6
	}
	alen := uint32(p.Addr().BitLen() / 8)
	ex := []expr.Any{
		&expr.Meta{Key: expr.MetaKeyNFPROTO, Register: reg},
		&expr.Cmp{Op: expr.CmpOpEq, Register: reg, Data: []byte{nfproto}},
		load,
	}
	if p.Bits() < p.Addr().BitLen() {
		mask := netip.PrefixFrom(maskAddr(p), p.Bits()).Masked().Addr().AsSlice()
		ex = append(ex, &expr.Bitwise{SourceRegister: reg, DestRegister: reg, Len: alen, Mask: mask, Xor: make([]byte, alen)})
	}
	return append(ex,
		&expr.Cmp{Op: expr.CmpOpEq, Register: reg, Data: p.Addr().AsSlice()},
		&expr.Counter{},
		&expr.Verdict{Kind: expr.VerdictAccept},
	)
}
