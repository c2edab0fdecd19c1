package compose

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"

	"github.com/compose-spec/compose-go/v2/template"
	"go.yaml.in/yaml/v4"
)

const (
	// maxYAMLNodes bounds the document once aliases are expanded. A 256 KiB
	// file has far fewer nodes than this; a billion-laughs file has far more.
	// The YAML library's own alias-ratio guard lets a few hundred thousand
	// nodes through, and compose-go then walks the expanded tree several
	// times, so the bound is enforced here first.
	maxYAMLNodes = 100_000
	// maxPortRange is the largest range one ports: entry may publish.
	maxPortRange = 100
	// maxPorts bounds all ports of the file together: compose-go expands
	// every range into one entry per port before we see the model.
	maxPorts = 1000
)

var errTooManyNodes = fmt.Errorf("compose file is too large once YAML aliases are expanded (more than %d nodes); refusing it", maxYAMLNodes)

// prescan looks at the raw YAML before compose-go does, for the inputs that
// would make compose-go itself spend unbounded time or memory. It returns an
// error when the YAML does not parse, and problems for what it refuses.
func prescan(body []byte, lookup template.Mapping) ([]string, error) {
	sc := &scanner{lookup: lookup, expanding: map[*yaml.Node]bool{}}
	dec := yaml.NewDecoder(bytes.NewReader(body))
	for {
		// Decoding into a Node keeps aliases as references, so this costs
		// time proportional to the body, whatever the aliases expand to.
		var doc yaml.Node
		err := dec.Decode(&doc)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, err
		}
		if err := sc.walk(&doc, nil); err != nil {
			return []string{err.Error()}, nil
		}
	}
	if sc.ports > maxPorts {
		sc.problems.add("compose file publishes %d ports; the limit is %d", sc.ports, maxPorts)
	}
	return sc.problems, nil
}

type scanner struct {
	lookup    template.Mapping
	visits    int
	ports     int
	problems  problems
	expanding map[*yaml.Node]bool
}

// walk visits the document as compose-go will see it, aliases expanded, and
// gives up as soon as that is more than maxYAMLNodes nodes.
func (sc *scanner) walk(n *yaml.Node, path []string) error {
	sc.visits++
	if sc.visits > maxYAMLNodes {
		return errTooManyNodes
	}
	switch n.Kind {
	case yaml.DocumentNode:
		for _, c := range n.Content {
			if err := sc.walk(c, path); err != nil {
				return err
			}
		}
	case yaml.AliasNode:
		if n.Alias == nil {
			return nil
		}
		if sc.expanding[n.Alias] {
			return errors.New("compose file is not valid: a YAML alias refers to its own anchor")
		}
		sc.expanding[n.Alias] = true
		err := sc.walk(n.Alias, path)
		delete(sc.expanding, n.Alias)
		return err
	case yaml.MappingNode:
		for i := 0; i+1 < len(n.Content); i += 2 {
			k, v := n.Content[i], n.Content[i+1]
			if err := sc.walk(k, path); err != nil {
				return err
			}
			key := scalar(k)
			child := path
			// A merge key splices the aliased mapping into this one, so its
			// keys live at this path.
			if key != "<<" {
				child = append(path[:len(path):len(path)], key)
			}
			if err := sc.walk(v, child); err != nil {
				return err
			}
		}
	case yaml.SequenceNode:
		if len(path) == 3 && (path[0] == "services" || path[0] == "jobs") && path[2] == "ports" {
			for _, item := range n.Content {
				sc.port(path[1], item)
			}
		}
		child := append(path[:len(path):len(path)], "[]")
		for _, c := range n.Content {
			if err := sc.walk(c, child); err != nil {
				return err
			}
		}
	}
	return nil
}

func scalar(n *yaml.Node) string {
	if n.Kind == yaml.AliasNode && n.Alias != nil {
		n = n.Alias
	}
	if n.Kind != yaml.ScalarNode {
		return ""
	}
	return n.Value
}

// port counts what one short-syntax ports: entry expands to. The value is
// interpolated the way compose-go will, since "${A:-1}-${B:-65535}" is a
// range too.
func (sc *scanner) port(service string, item *yaml.Node) {
	if item.Kind == yaml.AliasNode && item.Alias != nil {
		item = item.Alias
	}
	if item.Kind != yaml.ScalarNode {
		sc.ports++ // long syntax: one target port
		return
	}
	v := item.Value
	if strings.Contains(v, "$") {
		s, err := template.SubstituteWithOptions(v, sc.lookup, template.WithoutLogging)
		if err != nil {
			return // compose-go reports the interpolation error
		}
		v = s
	}
	n := portCount(v)
	if n > maxPortRange {
		sc.problems.svc(service, "port range %q publishes %d ports; at most %d per entry", item.Value, n, maxPortRange)
		n = maxPortRange
	}
	sc.ports += n
}

// portCount reads "[ip:][host:]container[-end][/proto]" the way docker's
// nat parser does; only the container range decides how many ports it
// produces.
func portCount(spec string) int {
	s := spec
	if i := strings.LastIndex(s, ":"); i >= 0 {
		s = s[i+1:]
	}
	s, _, _ = strings.Cut(s, "/")
	lo, hi, ok := strings.Cut(s, "-")
	if !ok {
		return 1
	}
	a, err1 := strconv.Atoi(strings.TrimSpace(lo))
	b, err2 := strconv.Atoi(strings.TrimSpace(hi))
	if err1 != nil || err2 != nil || b < a {
		return 1 // not a range docker accepts; compose-go reports it
	}
	return b - a + 1
}
