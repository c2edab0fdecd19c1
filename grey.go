package berth

import (
	"encoding/json"
	"fmt"
	"regexp"
	"slices"
	"strings"
	"time"
)

// Duration is a time.Duration written as Go text ("30s", "5m") in JSON, so
// a grey release's steps read the same in the API, the UI and the history.
type Duration time.Duration

// MarshalJSON writes the duration as text.
func (d Duration) MarshalJSON() ([]byte, error) { return json.Marshal(time.Duration(d).String()) }

// UnmarshalJSON reads text such as "90s" (or a number of nanoseconds).
func (d *Duration) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		var n int64
		if err2 := json.Unmarshal(b, &n); err2 != nil {
			return fmt.Errorf("a duration is text such as \"30s\" or \"5m\"")
		}
		*d = Duration(n)
		return nil
	}
	v, err := time.ParseDuration(s)
	if err != nil {
		return fmt.Errorf("%q is not a duration such as \"30s\" or \"5m\"", s)
	}
	*d = Duration(v)
	return nil
}

// GreyStep is one step of a grey release; exactly one field is set. The
// steps are data, modelled on Argo Rollouts' canary steps.
type GreyStep struct {
	// SetWeight sends this percentage of the traffic to the canary.
	SetWeight *int `json:"setWeight,omitempty"`
	// SetHeaderRoute / SetCookieRoute send requests carrying the header or
	// cookie to the canary whatever the weight.
	SetHeaderRoute *GreyMatch `json:"setHeaderRoute,omitempty"`
	SetCookieRoute *GreyMatch `json:"setCookieRoute,omitempty"`
	// Pause waits for a duration, for an approval, or (both empty) until
	// someone resumes or promotes.
	Pause *GreyPause `json:"pause,omitempty"`
	// Analysis compares canary and stable from the load balancer's figures.
	Analysis *GreyAnalysis `json:"analysis,omitempty"`
	// Scale changes the number of canary instances.
	Scale *int `json:"scale,omitempty"`
}

// GreyMatch names a header or cookie and the value that routes to the canary.
type GreyMatch struct {
	Name  string `json:"name"`
	Value string `json:"value"`
}

// GreyPause is a timed wait or an approval.
type GreyPause struct {
	Duration Duration      `json:"duration,omitempty"`
	Approval *GreyApproval `json:"approval,omitempty"`
}

// GreyApproval is an approval step between weights.
type GreyApproval struct {
	Roles  []Role `json:"roles,omitempty"` // default: approver
	Quorum int    `json:"quorum,omitempty"`
	// Timeout bounds the wait (default 24h); OnTimeout is fail (abort the
	// release) or escalate (EscalateTo gets one more Timeout).
	Timeout    Duration  `json:"timeout,omitempty"`
	OnTimeout  OnTimeout `json:"onTimeout,omitempty"`
	EscalateTo []Role    `json:"escalateTo,omitempty"`
}

// GreyAnalysis judges the canary over a window of live traffic.
type GreyAnalysis struct {
	Window Duration `json:"window"`
	// MaxErrorRate is the highest share of 5xx answers the canary may give.
	MaxErrorRate float64 `json:"maxErrorRate"`
	// MaxErrorRateIncrease, when set, is how far the canary's 5xx share may
	// exceed the stable instances' in the same window.
	MaxErrorRateIncrease float64 `json:"maxErrorRateIncrease,omitempty"`
	// MaxResponseMs, when set, bounds the canary's average response time.
	MaxResponseMs int64 `json:"maxResponseMs,omitempty"`
	// MinRequests the canary must have answered for a verdict; fewer makes
	// the analysis inconclusive and the release pauses for a person.
	MinRequests int64 `json:"minRequests,omitempty"`
}

var (
	headerNameRE = regexp.MustCompile(`^[A-Za-z0-9-]{1,64}$`)
	cookieNameRE = regexp.MustCompile(`^[A-Za-z0-9_.-]{1,64}$`)
	routeValueRE = regexp.MustCompile(`^[A-Za-z0-9_.:-]{1,128}$`)
)

// Limits of a grey release request.
const (
	MaxGreySteps    = 50
	MaxGreyCanaries = 20
)

// ValidateGreySteps checks steps before a run starts, naming the first
// problem; the workflow trusts what passed.
func ValidateGreySteps(steps []GreyStep) error {
	if len(steps) > MaxGreySteps {
		return fmt.Errorf("at most %d steps", MaxGreySteps)
	}
	for i, s := range steps {
		at := fmt.Sprintf("step %d", i+1)
		n := 0
		if s.SetWeight != nil {
			n++
			if *s.SetWeight < 0 || *s.SetWeight > 100 {
				return fmt.Errorf("%s: setWeight must be 0..100", at)
			}
		}
		for kind, m := range map[string]*GreyMatch{"setHeaderRoute": s.SetHeaderRoute, "setCookieRoute": s.SetCookieRoute} {
			if m == nil {
				continue
			}
			n++
			re := headerNameRE
			if kind == "setCookieRoute" {
				re = cookieNameRE
			}
			if !re.MatchString(m.Name) {
				return fmt.Errorf("%s: %s name %q must be 1-64 letters, digits or -", at, kind, m.Name)
			}
			if !routeValueRE.MatchString(m.Value) {
				return fmt.Errorf("%s: %s value %q must be 1-128 letters, digits or _ . : -", at, kind, m.Value)
			}
		}
		if p := s.Pause; p != nil {
			n++
			d := time.Duration(p.Duration)
			if p.Approval != nil && d != 0 {
				return fmt.Errorf("%s: a pause has a duration or an approval, not both", at)
			}
			if d != 0 && (d < time.Second || d > 24*time.Hour) {
				return fmt.Errorf("%s: pause duration must be between 1s and 24h", at)
			}
			if a := p.Approval; a != nil {
				if t := time.Duration(a.Timeout); t != 0 && (t < 10*time.Second || t > 7*24*time.Hour) {
					return fmt.Errorf("%s: approval timeout must be between 10s and 168h", at)
				}
				if a.Quorum < 0 || a.Quorum > 10 {
					return fmt.Errorf("%s: approval quorum must be 1..10", at)
				}
				switch a.OnTimeout {
				case "", OnTimeoutFail, OnTimeoutAbort:
				case OnTimeoutEscalate:
					if len(a.EscalateTo) == 0 {
						return fmt.Errorf("%s: onTimeout escalate needs escalateTo", at)
					}
				default:
					return fmt.Errorf("%s: onTimeout must be fail, abort or escalate", at)
				}
				for _, r := range append(slices.Clone(a.Roles), a.EscalateTo...) {
					if !slices.Contains(Roles, r) {
						return fmt.Errorf("%s: unknown role %q (roles: %s)", at, r, strings.Join(Names(Roles), ", "))
					}
				}
			}
		}
		if a := s.Analysis; a != nil {
			n++
			w := time.Duration(a.Window)
			if w < 2*time.Second || w > time.Hour {
				return fmt.Errorf("%s: analysis window must be between 2s and 1h", at)
			}
			if a.MaxErrorRate < 0 || a.MaxErrorRate > 1 || a.MaxErrorRateIncrease < 0 || a.MaxErrorRateIncrease > 1 {
				return fmt.Errorf("%s: analysis error rates are shares between 0 and 1", at)
			}
			if a.MaxResponseMs < 0 || a.MinRequests < 0 {
				return fmt.Errorf("%s: analysis maxResponseMs and minRequests must not be negative", at)
			}
		}
		if s.Scale != nil {
			n++
			if *s.Scale < 1 || *s.Scale > MaxGreyCanaries {
				return fmt.Errorf("%s: scale must be 1..%d canary instances", at, MaxGreyCanaries)
			}
		}
		if n != 1 {
			return fmt.Errorf("%s: give exactly one of setWeight, setHeaderRoute, setCookieRoute, pause, analysis, scale", at)
		}
	}
	return nil
}

// Describe is a step in a few words, for the run's timeline.
func (s GreyStep) Describe() string {
	switch {
	case s.SetWeight != nil:
		return fmt.Sprintf("setWeight %d%%", *s.SetWeight)
	case s.SetHeaderRoute != nil:
		return fmt.Sprintf("setHeaderRoute %s: %s", s.SetHeaderRoute.Name, s.SetHeaderRoute.Value)
	case s.SetCookieRoute != nil:
		return fmt.Sprintf("setCookieRoute %s=%s", s.SetCookieRoute.Name, s.SetCookieRoute.Value)
	case s.Pause != nil && s.Pause.Approval != nil:
		return "pause for approval"
	case s.Pause != nil && s.Pause.Duration > 0:
		return "pause " + time.Duration(s.Pause.Duration).String()
	case s.Pause != nil:
		return "pause until resumed"
	case s.Analysis != nil:
		return "analysis over " + time.Duration(s.Analysis.Window).String()
	case s.Scale != nil:
		return fmt.Sprintf("scale canary to %d", *s.Scale)
	}
	return "step"
}
