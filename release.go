package berth

import "time"

// ReleaseKind is what a release ships: an image, or a package of files.
// KindBuild is a package built into an image; it is recorded as an image release.
type ReleaseKind string

// Release kinds.
const (
	ReleaseImage ReleaseKind = "image"
	ReleaseFile  ReleaseKind = "file"
	ReleaseBuild ReleaseKind = "build"
)

// ReleaseKinds lists every release kind.
var ReleaseKinds = []ReleaseKind{ReleaseImage, ReleaseFile, ReleaseBuild}

// Strategy is how a release is rolled out.
type Strategy string

// Release strategies. StrategyDeploy marks the release a deploy made.
const (
	StrategyRolling Strategy = "rolling"
	StrategyGrey    Strategy = "grey"
	StrategyDeploy  Strategy = "deploy"
)

// Strategies lists every strategy.
var Strategies = []Strategy{StrategyRolling, StrategyGrey, StrategyDeploy}

// ReleaseOutcome is how a release ended (or that it has not yet).
type ReleaseOutcome string

// Release outcomes.
const (
	ReleaseRunning    ReleaseOutcome = "running"
	ReleaseSucceeded  ReleaseOutcome = "succeeded"
	ReleaseFailed     ReleaseOutcome = "failed"
	ReleaseRolledBack ReleaseOutcome = "rolled-back"
	// ReleaseAborted ends a grey release whose canary was taken away.
	ReleaseAborted ReleaseOutcome = "aborted"
	// ReleaseCandidate is an image recorded from a committed instance: it can
	// be released, but was not rolled out.
	ReleaseCandidate ReleaseOutcome = "candidate"
)

// ReleaseOutcomes lists every release outcome.
var ReleaseOutcomes = []ReleaseOutcome{ReleaseRunning, ReleaseSucceeded, ReleaseFailed, ReleaseRolledBack,
	ReleaseAborted, ReleaseCandidate}

// ReleaseOutput is what a release's post-upload command printed in one
// instance (stdout and stderr interleaved, at most 64 KiB) and its exit code.
type ReleaseOutput struct {
	ReleaseID uint      `json:"releaseId"`
	Instance  string    `json:"instance"`
	ExitCode  int       `json:"exitCode"`
	Output    string    `json:"output"`
	Truncated bool      `json:"truncated,omitempty"`
	CreatedAt time.Time `json:"createdAt"`
}
