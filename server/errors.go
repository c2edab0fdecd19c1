package server

import (
	"errors"
	"net/http"

	"github.com/gin-gonic/gin"
	"go.temporal.io/api/serviceerror"

	"github.com/berth-dev/berth"
	"github.com/berth-dev/berth/store"
)

func badRequest(msg string) error { return &berth.Error{Code: berth.EInvalid, Message: msg} }

// errorBody is the one error shape of the API.
type errorBody struct {
	Error struct {
		Code    string `json:"code"`
		Message string `json:"message"`
	} `json:"error"`
}

// fail writes err as the API's error shape. Internal details go to the log,
// never to the client.
func (s *Server) fail(c *gin.Context, err error) {
	var conflict *store.ConflictError
	if errors.As(err, &conflict) {
		if _, lock := conflict.Existing.(*store.Run); lock {
			// Another run holds the lock of what this request would change.
			s.metrics.LockConflict(c.FullPath())
		}
	}
	status, code, msg := s.classify(c, err)
	var body errorBody
	body.Error.Code, body.Error.Message = code, msg
	c.AbortWithStatusJSON(status, body)
}

// classify is the one mapping from errors to status, code and message, for
// the API's JSON and the UI's error pages alike.
func (s *Server) classify(c *gin.Context, err error) (int, string, string) {
	status, code, msg := http.StatusInternalServerError, "internal", "internal error; see the server log"
	var (
		maxBytes *http.MaxBytesError
		notFound *serviceerror.NotFound
		started  *serviceerror.WorkflowExecutionAlreadyStarted
		domain   *berth.Error
	)
	switch {
	case errors.As(err, &maxBytes):
		status, code, msg = http.StatusRequestEntityTooLarge, "too_large", "request body is larger than the limit"
	case errors.As(err, &domain):
		// The store's and the drivers' errors carry their domain code; the
		// message is the outermost one, which says what was looked for.
		status, code, msg = domain.Code.Status(), domain.APICode(), err.Error()
	case errors.As(err, &started):
		status, code, msg = http.StatusConflict, "conflict", "a workflow with this id is already running"
	case errors.As(err, &notFound):
		status, code, msg = http.StatusNotFound, "not_found", "workflow not found"
	default:
		s.log.Error("request failed", "method", c.Request.Method, "path", c.FullPath(), "error", err)
	}
	return status, code, msg
}
