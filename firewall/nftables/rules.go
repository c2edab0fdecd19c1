package nftables

import (
	"encoding/binary"
	"fmt"
	"math/bits"
	"net/netip"
	"strings"

	"github.com/google/nftables/binaryutil"
	"github.com/google/nftables/expr"
	"golang.org/x/sys/unix"

	"github.com/berth-dev/berth/firewall"
)

const (
	protoTCP = unix.IPPROTO_TCP
	protoUDP = unix.IPPROTO_UDP

	// Offsets into the IPv4/IPv6 headers and the TCP/UDP header (the
	// destination port sits at the same place in both).
	ip4SaddrOff = 12
	ip4DaddrOff = 16
	ip6SaddrOff = 8
	ip6DaddrOff = 24
	dportOff    = 2

	reg = 1 // NFT_REG_1: every match loads and compares in one register

	// Neither constant is in x/sys/unix. The original direction is the tuple
	// as the first packet arrived, i.e. before DNAT rewrote it.
	ctDirOriginal = 0    // IP_CT_DIR_ORIGINAL
	ctStatusDNAT  = 0x20 // IPS_DST_NAT, set only when DNAT changed the tuple
)

// InvalidOpeningError reports an Opening (or ID) refused before any netlink
// call. A retry cannot fix it, so callers may treat it as non-retryable
// (errors.As).
type InvalidOpeningError struct {
	ID     string
	Field  string
	Reason string
}

func (e *InvalidOpeningError) Error() string {
	return fmt.Sprintf("nftables: invalid opening %q: %s %s", e.ID, e.Field, e.Reason)
}

// match is a validated Opening in the form the rule is built from.
type match struct {
	dst   netip.Addr   // unspecified (0.0.0.0 or ::) means any address of that family
	src   netip.Prefix // invalid means any source
	proto byte
	port  uint16
}

func validTableName(s string) bool {
	if len(s) == 0 || len(s) > 64 {
		return false
	}
	for i, r := range s {
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z':
		case i > 0 && (r >= '0' && r <= '9' || r == '_' || r == '-'):
		default:
			return false
		}
	}
	return true
}

func validateID(id string) error {
	if id == "" {
		return &InvalidOpeningError{ID: id, Field: "id", Reason: "is empty"}
	}
	if len(id) > maxIDLen {
		return &InvalidOpeningError{ID: id, Field: "id", Reason: fmt.Sprintf("is %d bytes, at most %d allowed", len(id), maxIDLen)}
	}
	for _, r := range id {
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9':
		case strings.ContainsRune("_./:-", r):
		default:
			return &InvalidOpeningError{ID: id, Field: "id", Reason: fmt.Sprintf("has %q; only [A-Za-z0-9_./:-] allowed", r)}
		}
	}
	return nil
}

func parseOpening(o firewall.Opening) (match, error) {
	var m match
	bad := func(field, format string, args ...any) (match, error) {
		return match{}, &InvalidOpeningError{ID: o.ID, Field: field, Reason: fmt.Sprintf(format, args...)}
	}
	if err := validateID(o.ID); err != nil {
		return match{}, err
	}
	switch o.Protocol {
	case "tcp":
		m.proto = protoTCP
	case "udp":
		m.proto = protoUDP
	default:
		return bad("protocol", "%q is not tcp or udp", o.Protocol)
	}
	if o.DestPort < 1 || o.DestPort > 65535 {
		return bad("destPort", "%d is outside 1-65535", o.DestPort)
	}
	m.port = uint16(o.DestPort)

	dst, err := netip.ParseAddr(o.DestIP)
	if err != nil {
		return bad("destIP", "%q is not an IP address", o.DestIP)
	}
	if dst.Zone() != "" {
		return bad("destIP", "%q has a zone, which a rule cannot match", o.DestIP)
	}
	m.dst = dst.Unmap()

	if o.Source != "" {
		var p netip.Prefix
		if strings.Contains(o.Source, "/") {
			p, err = netip.ParsePrefix(o.Source)
		} else {
			var a netip.Addr
			a, err = netip.ParseAddr(o.Source)
			p = netip.PrefixFrom(a, a.BitLen())
		}
		if err != nil {
			return bad("source", "%q is not a CIDR (e.g. 203.0.113.0/24) or IP", o.Source)
		}
		if p.Addr().Zone() != "" {
			return bad("source", "%q has a zone, which a rule cannot match", o.Source)
		}
		if p.Addr().Is4In6() && p.Bits() >= 96 {
			p = netip.PrefixFrom(p.Addr().Unmap(), p.Bits()-96)
		}
		if p.Addr().Is4() != m.dst.Is4() {
			return bad("source", "%q is not of the same IP family as destIP %q", o.Source, o.DestIP)
		}
		// /0 is "anyone", the same as no source: no match is emitted.
		if p.Bits() > 0 {
			m.src = p.Masked()
		}
	}
	return m, nil
}

// exprs builds the input-chain accept rule for m, in the order nft itself
// emits: family, source, destination, protocol, port.
func (m match) exprs() []expr.Any {
	nfproto, saddrOff, daddrOff := byte(unix.NFPROTO_IPV4), uint32(ip4SaddrOff), uint32(ip4DaddrOff)
	if m.dst.Is6() {
		nfproto, saddrOff, daddrOff = unix.NFPROTO_IPV6, ip6SaddrOff, ip6DaddrOff
	}
	alen := uint32(m.dst.BitLen() / 8)
	return m.build(
		&expr.Payload{DestRegister: reg, Base: expr.PayloadBaseNetworkHeader, Offset: saddrOff, Len: alen},
		&expr.Payload{DestRegister: reg, Base: expr.PayloadBaseNetworkHeader, Offset: daddrOff, Len: alen},
		&expr.Payload{DestRegister: reg, Base: expr.PayloadBaseTransportHeader, Offset: dportOff, Len: 2},
		nfproto,
	)
}

// forwardExprs builds the forward-chain accept rule for m: the same match,
// read from the conntrack original tuple instead of the packet. By the
// forward hook a published port's packet has been DNAT'd, so its headers
// name the container's address and port, not the host's that m names.
// (nft shows these as "ct original ip daddr", "ct original proto-dst".)
func (m match) forwardExprs() []expr.Any {
	nfproto := byte(unix.NFPROTO_IPV4)
	if m.dst.Is6() {
		nfproto = unix.NFPROTO_IPV6
	}
	// NFT_CT_SRC/DST rather than the newer NFT_CT_SRC_IP/DST_IP keys: the
	// library sends a direction only with the former, and the kernel refuses
	// the latter without one. In an inet chain these load 16 bytes; the
	// compare reads only the address length, and the nfproto match pins
	// which. The library encodes the direction as a big-endian u32 where the
	// kernel reads a u8, i.e. the first byte: right for original (0) only,
	// which is the one direction berth uses (see also dumpRules).
	return m.build(
		&expr.Ct{Register: reg, Key: expr.CtKeySRC, Direction: ctDirOriginal},
		&expr.Ct{Register: reg, Key: expr.CtKeyDST, Direction: ctDirOriginal},
		&expr.Ct{Register: reg, Key: expr.CtKeyPROTODST, Direction: ctDirOriginal},
		nfproto,
	)
}

// build assembles an accept rule from the loads of source, destination and
// destination port, which are all the two chains differ in.
func (m match) build(loadSrc, loadDst, loadPort expr.Any, nfproto byte) []expr.Any {
	alen := uint32(m.dst.BitLen() / 8)
	// An inet chain sees both families; the address loads are only
	// meaningful once the family is pinned.
	ex := []expr.Any{
		&expr.Meta{Key: expr.MetaKeyNFPROTO, Register: reg},
		&expr.Cmp{Op: expr.CmpOpEq, Register: reg, Data: []byte{nfproto}},
	}
	if m.src.IsValid() {
		ex = append(ex, loadSrc)
		if m.src.Bits() < m.src.Addr().BitLen() {
			mask := netip.PrefixFrom(maskAddr(m.src), m.src.Bits()).Masked().Addr().AsSlice()
			ex = append(ex, &expr.Bitwise{SourceRegister: reg, DestRegister: reg, Len: alen, Mask: mask, Xor: make([]byte, alen)})
		}
		ex = append(ex, &expr.Cmp{Op: expr.CmpOpEq, Register: reg, Data: m.src.Addr().AsSlice()})
	}
	if !m.dst.IsUnspecified() {
		ex = append(ex,
			loadDst,
			&expr.Cmp{Op: expr.CmpOpEq, Register: reg, Data: m.dst.AsSlice()},
		)
	}
	return append(ex,
		&expr.Meta{Key: expr.MetaKeyL4PROTO, Register: reg},
		&expr.Cmp{Op: expr.CmpOpEq, Register: reg, Data: []byte{m.proto}},
		loadPort,
		&expr.Cmp{Op: expr.CmpOpEq, Register: reg, Data: binaryutil.BigEndian.PutUint16(m.port)},
		&expr.Counter{},
		&expr.Verdict{Kind: expr.VerdictAccept},
	)
}

// maskAddr returns the all-ones address of p's family, so that masking it to
// p's length yields the netmask.
func maskAddr(p netip.Prefix) netip.Addr {
	b := make([]byte, p.Addr().BitLen()/8)
	for i := range b {
		b[i] = 0xff
	}
	a, _ := netip.AddrFromSlice(b)
	return a
}

// guardExprs drops new connections (tcp) or flows (udp) to the port range.
// Only ct state new is dropped: replies to connections the host made itself,
// and connections opened before a Close, are left alone.
func guardExprs(proto byte, portMin, portMax uint16) []expr.Any {
	return []expr.Any{
		&expr.Meta{Key: expr.MetaKeyL4PROTO, Register: reg},
		&expr.Cmp{Op: expr.CmpOpEq, Register: reg, Data: []byte{proto}},
		&expr.Payload{DestRegister: reg, Base: expr.PayloadBaseTransportHeader, Offset: dportOff, Len: 2},
		&expr.Range{Op: expr.CmpOpEq, Register: reg, FromData: binaryutil.BigEndian.PutUint16(portMin), ToData: binaryutil.BigEndian.PutUint16(portMax)},
		&expr.Ct{Register: reg, Key: expr.CtKeySTATE},
		&expr.Bitwise{SourceRegister: reg, DestRegister: reg, Len: 4, Mask: binaryutil.NativeEndian.PutUint32(expr.CtStateBitNEW), Xor: make([]byte, 4)},
		&expr.Cmp{Op: expr.CmpOpNeq, Register: reg, Data: make([]byte, 4)},
		&expr.Counter{},
		&expr.Verdict{Kind: expr.VerdictDrop},
	}
}

// forwardGuardExprs is the forward-chain guard: it drops new flows whose
// original destination port (the published host port, before DNAT) is in
// the range. ct status dnat limits it to DNAT'd traffic, so a host that also
// routes ordinary traffic to ports in the range is not affected by berth.
func forwardGuardExprs(proto byte, portMin, portMax uint16) []expr.Any {
	return []expr.Any{
		&expr.Meta{Key: expr.MetaKeyL4PROTO, Register: reg},
		&expr.Cmp{Op: expr.CmpOpEq, Register: reg, Data: []byte{proto}},
		&expr.Ct{Register: reg, Key: expr.CtKeyPROTODST, Direction: ctDirOriginal},
		&expr.Range{Op: expr.CmpOpEq, Register: reg, FromData: binaryutil.BigEndian.PutUint16(portMin), ToData: binaryutil.BigEndian.PutUint16(portMax)},
		&expr.Ct{Register: reg, Key: expr.CtKeySTATUS},
		&expr.Bitwise{SourceRegister: reg, DestRegister: reg, Len: 4, Mask: binaryutil.NativeEndian.PutUint32(ctStatusDNAT), Xor: make([]byte, 4)},
		&expr.Cmp{Op: expr.CmpOpNeq, Register: reg, Data: make([]byte, 4)},
		&expr.Ct{Register: reg, Key: expr.CtKeySTATE},
		&expr.Bitwise{SourceRegister: reg, DestRegister: reg, Len: 4, Mask: binaryutil.NativeEndian.PutUint32(expr.CtStateBitNEW), Xor: make([]byte, 4)},
		&expr.Cmp{Op: expr.CmpOpNeq, Register: reg, Data: make([]byte, 4)},
		&expr.Counter{},
		&expr.Verdict{Kind: expr.VerdictDrop},
	}
}

// parseRule reads an accept rule built by match.exprs or match.forwardExprs
// back into an Opening. It accepts exactly the shapes those produce, so a
// rule edited by hand is reported rather than misread.
func parseRule(id string, exprs []expr.Any) (firewall.Opening, error) {
	const (
		none = iota
		nfproto
		l4proto
		saddr
		daddr
		dport
	)
	o := firewall.Opening{ID: id}
	var (
		loaded   = none
		mask     []byte
		family   byte
		dst      netip.Addr
		src      netip.Prefix
		accepted bool
		// A rule reads either the packet or the conntrack tuple; a mix
		// is nothing berth builds.
		fromPacket, fromCt bool
	)
	for i, e := range exprs {
		switch e := e.(type) {
		case *expr.Meta:
			switch e.Key {
			case expr.MetaKeyNFPROTO:
				loaded = nfproto
			case expr.MetaKeyL4PROTO:
				loaded = l4proto
			default:
				return o, fmt.Errorf("expression %d: unexpected meta key %d", i, e.Key)
			}
		case *expr.Ct:
			fromCt = true
			if e.Direction != ctDirOriginal {
				return o, fmt.Errorf("expression %d: conntrack direction %d, want original", i, e.Direction)
			}
			switch e.Key {
			case expr.CtKeySRC:
				loaded = saddr
			case expr.CtKeyDST:
				loaded = daddr
			case expr.CtKeyPROTODST:
				loaded = dport
			default:
				return o, fmt.Errorf("expression %d: unexpected ct key %d", i, e.Key)
			}
		case *expr.Payload:
			fromPacket = true
			switch {
			case e.Base == expr.PayloadBaseNetworkHeader && (e.Offset == ip4SaddrOff && e.Len == 4 || e.Offset == ip6SaddrOff && e.Len == 16):
				loaded = saddr
			case e.Base == expr.PayloadBaseNetworkHeader && (e.Offset == ip4DaddrOff && e.Len == 4 || e.Offset == ip6DaddrOff && e.Len == 16):
				loaded = daddr
			case e.Base == expr.PayloadBaseTransportHeader && e.Offset == dportOff && e.Len == 2:
				loaded = dport
			default:
				return o, fmt.Errorf("expression %d: unexpected payload base %d offset %d len %d", i, e.Base, e.Offset, e.Len)
			}
		case *expr.Bitwise:
			if loaded != saddr {
				return o, fmt.Errorf("expression %d: bitwise not applied to a source address", i)
			}
			mask = e.Mask
		case *expr.Cmp:
			if e.Op != expr.CmpOpEq {
				return o, fmt.Errorf("expression %d: comparison op %d, want eq", i, e.Op)
			}
			switch loaded {
			case nfproto:
				if len(e.Data) != 1 || (e.Data[0] != unix.NFPROTO_IPV4 && e.Data[0] != unix.NFPROTO_IPV6) {
					return o, fmt.Errorf("expression %d: unexpected nfproto %v", i, e.Data)
				}
				family = e.Data[0]
			case l4proto:
				switch {
				case len(e.Data) == 1 && e.Data[0] == protoTCP:
					o.Protocol = "tcp"
				case len(e.Data) == 1 && e.Data[0] == protoUDP:
					o.Protocol = "udp"
				default:
					return o, fmt.Errorf("expression %d: unexpected l4proto %v", i, e.Data)
				}
			case saddr:
				a, ok := netip.AddrFromSlice(e.Data)
				if !ok {
					return o, fmt.Errorf("expression %d: source address of %d bytes", i, len(e.Data))
				}
				ones := a.BitLen()
				if mask != nil {
					if ones, ok = prefixLen(mask); !ok || len(mask) != len(e.Data) {
						return o, fmt.Errorf("expression %d: source mask %x is not a prefix mask", i, mask)
					}
				}
				src = netip.PrefixFrom(a, ones)
			case daddr:
				a, ok := netip.AddrFromSlice(e.Data)
				if !ok {
					return o, fmt.Errorf("expression %d: destination address of %d bytes", i, len(e.Data))
				}
				dst = a
			case dport:
				if len(e.Data) != 2 {
					return o, fmt.Errorf("expression %d: port of %d bytes", i, len(e.Data))
				}
				o.DestPort = int(binary.BigEndian.Uint16(e.Data))
			default:
				return o, fmt.Errorf("expression %d: comparison with nothing loaded", i)
			}
			loaded, mask = none, nil
		case *expr.Counter:
		case *expr.Verdict:
			if e.Kind != expr.VerdictAccept {
				return o, fmt.Errorf("expression %d: verdict %d, want accept", i, e.Kind)
			}
			accepted = true
		default:
			return o, fmt.Errorf("expression %d: unexpected %T", i, e)
		}
	}
	switch {
	case fromPacket && fromCt:
		return o, fmt.Errorf("mixes packet and conntrack matches")
	case !accepted:
		return o, fmt.Errorf("no accept verdict")
	case family == 0:
		return o, fmt.Errorf("no address family match")
	case o.Protocol == "":
		return o, fmt.Errorf("no protocol match")
	case o.DestPort == 0:
		return o, fmt.Errorf("no port match")
	}
	if !dst.IsValid() {
		dst = netip.IPv4Unspecified()
		if family == unix.NFPROTO_IPV6 {
			dst = netip.IPv6Unspecified()
		}
	}
	if (family == unix.NFPROTO_IPV4) != dst.Is4() || (src.IsValid() && src.Addr().Is4() != dst.Is4()) {
		return o, fmt.Errorf("addresses do not match the rule's family")
	}
	o.DestIP = dst.String()
	if src.IsValid() {
		o.Source = src.String()
	}
	return o, nil
}

// prefixLen returns the length of a contiguous netmask.
func prefixLen(mask []byte) (int, bool) {
	n, seenZero := 0, false
	for _, b := range mask {
		if seenZero && b != 0 {
			return 0, false
		}
		ones := bits.LeadingZeros8(^b)
		if b<<ones != 0 {
			return 0, false
		}
		n += ones
		if ones < 8 {
			seenZero = true
		}
	}
	return n, true
}
