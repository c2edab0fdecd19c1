package compose

import (
	"encoding/json"
	"reflect"
	"sort"
)

// ChangeKind says what an update does to one service.
type ChangeKind string

// The kinds of change, from the cheapest to the most disruptive.
const (
	ChangeNone   ChangeKind = "unchanged"
	ChangeScale  ChangeKind = "scale"
	ChangeImage  ChangeKind = "image"
	ChangeSpec   ChangeKind = "spec"
	ChangeAdd    ChangeKind = "added"
	ChangeRemove ChangeKind = "removed"
)

// ServiceChange is one service's line of an update plan.
type ServiceChange struct {
	Service string     `json:"service"`
	Kind    ChangeKind `json:"kind"`
	// Fields are the spec's fields that differ (env, health, memoryBytes …),
	// sorted; empty unless Kind is spec.
	Fields       []string `json:"fields,omitempty"`
	FromReplicas int      `json:"fromReplicas"`
	ToReplicas   int      `json:"toReplicas"`
	FromImage    string   `json:"fromImage,omitempty"`
	ToImage      string   `json:"toImage,omitempty"`
}

// Changed reports whether the change does anything.
func (c ServiceChange) Changed() bool { return c.Kind != ChangeNone }

// KeepLive carries what runs now into next where the file did not ask for
// a change: a service whose image (or replica count) is the same in next
// as in the previous file keeps the image a release moved it to (or the
// count a scale set). Without this an unrelated edit would silently undo
// every release and scale since the last file.
func KeepLive(prevFile, live, next *Spec) {
	for i := range next.Services {
		n := &next.Services[i]
		p, l := prevFile.Service(n.Name), live.Service(n.Name)
		if p == nil || l == nil {
			continue
		}
		if p.Image == n.Image {
			n.Image = l.Image
		}
		if p.Replicas == n.Replicas {
			n.Replicas = l.Replicas
		}
	}
}

// Diff plans an update from the running services to next's: next's
// services in dependency order (so an added service comes after what it
// depends on), then the services next no longer has.
func Diff(running, next *Spec) []ServiceChange {
	var out []ServiceChange
	for _, n := range next.Services {
		c := ServiceChange{Service: n.Name, ToReplicas: n.Replicas, ToImage: n.Image}
		r := running.Service(n.Name)
		if r == nil {
			c.Kind = ChangeAdd
			out = append(out, c)
			continue
		}
		c.FromReplicas, c.FromImage = r.Replicas, r.Image
		c.Fields = specFields(*r, n)
		switch {
		case len(c.Fields) > 0:
			c.Kind = ChangeSpec
		case r.Image != n.Image:
			c.Kind = ChangeImage
		case r.Replicas != n.Replicas:
			c.Kind = ChangeScale
		default:
			c.Kind = ChangeNone
		}
		out = append(out, c)
	}
	for _, r := range running.Services {
		if next.Service(r.Name) == nil {
			out = append(out, ServiceChange{Service: r.Name, Kind: ChangeRemove, FromReplicas: r.Replicas, FromImage: r.Image})
		}
	}
	return out
}

// specFields names the fields, other than image, replica count and notes,
// in which two specs of a service differ: each needs new containers.
func specFields(a, b ServiceSpec) []string {
	am, bm := fieldMap(a), fieldMap(b)
	var out []string
	for k, av := range am {
		if !reflect.DeepEqual(av, bm[k]) {
			out = append(out, k)
		}
	}
	for k := range bm {
		if _, ok := am[k]; !ok {
			out = append(out, k)
		}
	}
	sort.Strings(out)
	return out
}

func fieldMap(s ServiceSpec) map[string]any {
	s.Image, s.Replicas, s.Notes = "", 0, nil
	b, _ := json.Marshal(s)
	m := map[string]any{}
	_ = json.Unmarshal(b, &m)
	delete(m, "image")
	delete(m, "replicas")
	delete(m, "name")
	return m
}
