package berth

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"time"
)

// TerminalRelayToken is what a worker shows the API when it dials back to
// relay a terminal session: an HMAC of the session id under the key every
// server and worker derives from the payload key file. Nothing secret goes
// into the session's workflow input, and a token opens one session only.
func TerminalRelayToken(key []byte, sessionID string) string {
	m := hmac.New(sha256.New, key)
	m.Write([]byte("berth terminal relay\x00" + sessionID))
	return hex.EncodeToString(m.Sum(nil))
}

// TerminalResize is the control message that sets a terminal's size; it
// travels as a text frame beside the binary frames of the session's bytes.
type TerminalResize struct {
	Cols uint `json:"cols"`
	Rows uint `json:"rows"`
}

// TerminalEnd is the last text frame of a session: the command's exit code,
// or why the session was closed.
type TerminalEnd struct {
	Exit   *int   `json:"exit,omitempty"`
	Reason string `json:"reason,omitempty"`
}

// Terminal limits: a session with no input for TerminalIdle is closed, and
// none outlives TerminalMax; TranscriptMax bytes of what was typed are kept.
const (
	TerminalIdle  = 15 * time.Minute
	TerminalMax   = 8 * time.Hour
	TranscriptMax = 64 << 10
)
