package berth

import (
	"errors"
	"fmt"
	"net/http"
)

// Code says what kind of failure an Error is. The first eight values double
// as the Temporal application error types the activities fail with, so they
// are part of recorded histories: never rename one.
type Code string

// Error codes.
const (
	EInvalid     Code = "InvalidInput"     // the request can never succeed as given
	ENotFound    Code = "NotFound"         // a record or object it names does not exist
	EConflict    Code = "Conflict"         // it clashes with something that exists
	ENoCapacity  Code = "NoCapacity"       // no host or port is free for it
	EImage       Code = "ImageUnavailable" // an image is missing and cannot be pulled
	EUnhealthy   Code = "Unhealthy"        // an instance did not become healthy
	EHostRefused Code = "HostRefused"      // an engine refused the request outright
	EPortTaken   Code = "PortTaken"        // a host port the plan chose is held by something outside berth

	EUnauthorized   Code = "Unauthorized"   // no valid credentials
	EForbidden      Code = "Forbidden"      // valid credentials without the right
	ETooLarge       Code = "TooLarge"       // a body or upload over its limit
	ERateLimited    Code = "RateLimited"    // too many attempts; try again later
	EUnprocessable  Code = "Unprocessable"  // well-formed, but its content is refused (a bad package)
	EUnavailable    Code = "Unavailable"    // a part berth needs is not running (a region's worker)
	EUpstream       Code = "Upstream"       // a system berth talks to failed to answer (Temporal, an engine)
	ETimeout        Code = "Timeout"        // a system berth talks to answered too late
	ENotImplemented Code = "NotImplemented" // this deployment lacks what the request needs
	EInternal       Code = "Internal"       // anything else: details go to the log only
)

// activityCodes are the codes activities fail with: Temporal error types.
var activityCodes = []Code{EInvalid, ENotFound, EConflict, ENoCapacity, EImage, EUnhealthy, EHostRefused, EPortTaken}

// Codes lists every code.
var Codes = append(append([]Code{}, activityCodes...), EUnauthorized, EForbidden, ETooLarge, ERateLimited,
	EUnprocessable, EUnavailable, EUpstream, ETimeout, ENotImplemented, EInternal)

// codeInfo is the one table from codes to what the API answers: the HTTP
// status and the code name clients see in {"error":{"code",...}}.
var codeInfo = map[Code]struct {
	status int
	api    string
}{
	EInvalid:        {http.StatusBadRequest, "bad_request"},
	ENotFound:       {http.StatusNotFound, "not_found"},
	EConflict:       {http.StatusConflict, "conflict"},
	ENoCapacity:     {http.StatusConflict, "no_capacity"},
	EImage:          {http.StatusUnprocessableEntity, "image_unavailable"},
	EUnhealthy:      {http.StatusUnprocessableEntity, "unhealthy"},
	EHostRefused:    {http.StatusBadGateway, "host_refused"},
	EPortTaken:      {http.StatusConflict, "port_taken"},
	EUnauthorized:   {http.StatusUnauthorized, "unauthorized"},
	EForbidden:      {http.StatusForbidden, "forbidden"},
	ETooLarge:       {http.StatusRequestEntityTooLarge, "too_large"},
	ERateLimited:    {http.StatusTooManyRequests, "rate_limited"},
	EUnprocessable:  {http.StatusUnprocessableEntity, "unprocessable"},
	EUnavailable:    {http.StatusServiceUnavailable, "unavailable"},
	EUpstream:       {http.StatusBadGateway, "upstream"},
	ETimeout:        {http.StatusGatewayTimeout, "timeout"},
	ENotImplemented: {http.StatusNotImplemented, "not_implemented"},
	EInternal:       {http.StatusInternalServerError, "internal"},
}

// Status is the HTTP status for a code (500 for one it does not know).
func (c Code) Status() int {
	if i, ok := codeInfo[c]; ok {
		return i.status
	}
	return http.StatusInternalServerError
}

// API is the code's name in the API's error body ("internal" for one it
// does not know).
func (c Code) API() string {
	if i, ok := codeInfo[c]; ok {
		return i.api
	}
	return "internal"
}

// Error is a failure a user can act on: a code and a message that is safe to
// show. Reason, when set, is a finer machine-readable name the API shows
// instead of the code's (for example "comment_required", so a form can tie
// the message to its field). Anything that is not an *Error is internal and
// goes to the log only.
type Error struct {
	Code    Code
	Message string
	Reason  string
}

func (e *Error) Error() string { return e.Message }

// APICode is the code clients see: the Reason when set, else the code's name.
func (e *Error) APICode() string {
	if e.Reason != "" {
		return e.Reason
	}
	return e.Code.API()
}

// Errorf returns an *Error with a formatted message.
func Errorf(code Code, format string, args ...any) error {
	return &Error{Code: code, Message: fmt.Sprintf(format, args...)}
}

// ErrorCode returns the code of the first *Error in err's chain, or "".
func ErrorCode(err error) Code {
	var e *Error
	if errors.As(err, &e) {
		return e.Code
	}
	return ""
}

// CodeNames returns the codes the activities fail with, as strings, for
// retry policies' lists of non-retryable error types.
func CodeNames() []string { return Names(activityCodes) }
