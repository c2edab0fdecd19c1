package nftables

import (
	"encoding/binary"
	"fmt"

	nft "github.com/google/nftables"
	"github.com/google/nftables/expr"
	"github.com/mdlayher/netlink"
	"golang.org/x/sys/unix"
)

// dumpRules lists the rules of one chain of table, like nft.Conn.GetRules,
// but decodes the ct expression itself. It exists because
// github.com/google/nftables v0.3.0 (the latest release) reads
// NFTA_CT_DIRECTION as a u32 while the kernel dumps it as a u8, so GetRules
// fails on any chain holding "ct original ...", which is what the forward
// chain is made of. Once the module is on a version with the fix (upstream
// PR #317), the forward chain can go back to GetRules and this file can go.
//
// nl must already be in the right network namespace.
func dumpRules(nl *netlink.Conn, table *nft.Table, chain string) ([]*nft.Rule, error) {
	attrs, err := netlink.MarshalAttributes([]netlink.Attribute{
		{Type: unix.NFTA_RULE_TABLE, Data: []byte(table.Name + "\x00")},
		{Type: unix.NFTA_RULE_CHAIN, Data: []byte(chain + "\x00")},
	})
	if err != nil {
		return nil, err
	}
	req := netlink.Message{
		Header: netlink.Header{
			Type:  netlink.HeaderType(unix.NFNL_SUBSYS_NFTABLES<<8 | unix.NFT_MSG_GETRULE),
			Flags: netlink.Request | netlink.Dump,
		},
		// nfgenmsg: family, version, resource id.
		Data: append([]byte{byte(table.Family), unix.NFNETLINK_V0, 0, 0}, attrs...),
	}
	msgs, err := nl.Execute(req)
	if err != nil {
		return nil, err
	}
	rules := make([]*nft.Rule, 0, len(msgs))
	for _, m := range msgs {
		if len(m.Data) < 4 {
			return nil, fmt.Errorf("rule message of %d bytes", len(m.Data))
		}
		r, err := decodeRule(byte(table.Family), m.Data[4:])
		if err != nil {
			return nil, err
		}
		r.Table = table
		r.Chain = &nft.Chain{Name: chain, Table: table}
		rules = append(rules, r)
	}
	return rules, nil
}

func decodeRule(fam byte, b []byte) (*nft.Rule, error) {
	ad, err := netlink.NewAttributeDecoder(b)
	if err != nil {
		return nil, err
	}
	ad.ByteOrder = binary.BigEndian
	r := &nft.Rule{}
	for ad.Next() {
		switch ad.Type() {
		case unix.NFTA_RULE_HANDLE:
			r.Handle = ad.Uint64()
		case unix.NFTA_RULE_USERDATA:
			r.UserData = ad.Bytes()
		case unix.NFTA_RULE_EXPRESSIONS:
			ad.Nested(func(list *netlink.AttributeDecoder) error {
				for list.Next() {
					list.Nested(func(elem *netlink.AttributeDecoder) error {
						e, err := decodeExpr(fam, elem)
						if err != nil {
							return err
						}
						r.Exprs = append(r.Exprs, e)
						return nil
					})
				}
				return list.Err()
			})
		}
	}
	if err := ad.Err(); err != nil {
		return nil, fmt.Errorf("decode rule: %w", err)
	}
	return r, nil
}

// opaque stands for an expression berth never builds. Keeping it in the
// list, rather than skipping it as GetRules does, makes parseRule refuse the
// rule instead of reading it without that part. It is never marshalled: a
// dumped rule is only read, or deleted by handle.
type opaque struct {
	expr.Any
	name string
}

func decodeExpr(fam byte, ad *netlink.AttributeDecoder) (expr.Any, error) {
	var (
		name string
		data []byte
	)
	for ad.Next() {
		switch ad.Type() {
		case unix.NFTA_EXPR_NAME:
			name = ad.String()
		case unix.NFTA_EXPR_DATA:
			data = ad.Bytes()
		}
	}
	if err := ad.Err(); err != nil {
		return nil, err
	}
	var e expr.Any
	switch name {
	case "ct":
		return decodeCt(data)
	case "meta":
		e = &expr.Meta{}
	case "cmp":
		e = &expr.Cmp{}
	case "payload":
		e = &expr.Payload{}
	case "bitwise":
		e = &expr.Bitwise{}
	case "range":
		e = &expr.Range{}
	case "counter":
		e = &expr.Counter{}
	case "immediate":
		e = &expr.Immediate{}
	default:
		return &opaque{name: name}, nil
	}
	if err := expr.Unmarshal(fam, data, e); err != nil {
		return nil, fmt.Errorf("decode %s expression: %w", name, err)
	}
	// A verdict is an immediate into the verdict register; GetRules makes
	// the same substitution, which is what parseRule expects.
	if imm, ok := e.(*expr.Immediate); ok && imm.Register == unix.NFT_REG_VERDICT && len(imm.Data) == 0 {
		v := &expr.Verdict{}
		if err := expr.Unmarshal(fam, data, v); err != nil {
			return nil, fmt.Errorf("decode verdict: %w", err)
		}
		return v, nil
	}
	return e, nil
}

func decodeCt(data []byte) (*expr.Ct, error) {
	ad, err := netlink.NewAttributeDecoder(data)
	if err != nil {
		return nil, err
	}
	ad.ByteOrder = binary.BigEndian
	e := &expr.Ct{}
	for ad.Next() {
		switch ad.Type() {
		case unix.NFTA_CT_KEY:
			e.Key = expr.CtKey(ad.Uint32())
		case unix.NFTA_CT_DREG:
			e.Register = ad.Uint32()
		case unix.NFTA_CT_SREG:
			e.Register, e.SourceRegister = ad.Uint32(), true
		case unix.NFTA_CT_DIRECTION:
			e.Direction = uint32(ad.Uint8())
		}
	}
	if err := ad.Err(); err != nil {
		return nil, fmt.Errorf("decode ct expression: %w", err)
	}
	return e, nil
}
