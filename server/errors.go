package server

import (
	"errors"
	"net/http"

	"github.com/gin-gonic/gin"
	"go.temporal.io/api/serviceerror"

	"github.com/berth-dev/berth/activities/compose"
	"github.com/berth-dev/berth/store"
)

// apiError is an error with the status and code the client sees.
type apiError struct {
	Status  int
	Code    string
	Message string
}

func (e *apiError) Error() string { return e.Message }

func badRequest(msg string) error { return &apiError{http.StatusBadRequest, "bad_request", msg} }

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
		ae       *apiError
		conflict *store.ConflictError
		invalid  *compose.ValidationError
		maxBytes *http.MaxBytesError
		notFound *serviceerror.NotFound
		started  *serviceerror.WorkflowExecutionAlreadyStarted
		authn    *authError
		authz    *forbiddenError
		denied   *store.DeniedError
		invalidS *store.InvalidError
	)
	switch {
	case errors.As(err, &ae):
		status, code, msg = ae.Status, ae.Code, ae.Message
	case errors.As(err, &authn):
		status, code, msg = http.StatusUnauthorized, "unauthorized", authn.msg
	case errors.As(err, &authz):
		status, code, msg = http.StatusForbidden, "forbidden", authz.msg
	case errors.As(err, &denied):
		status, code, msg = http.StatusForbidden, "forbidden", denied.Msg
	case errors.As(err, &invalidS):
		status, code, msg = http.StatusBadRequest, "bad_request", invalidS.Msg
		if invalidS.Code != "" {
			code = invalidS.Code
		}
	case errors.As(err, &maxBytes):
		status, code, msg = http.StatusRequestEntityTooLarge, "too_large", "request body is larger than the limit"
	case errors.As(err, &invalid):
		status, code, msg = http.StatusBadRequest, "invalid_compose", invalid.Error()
	case errors.Is(err, store.ErrNotFound):
		status, code, msg = http.StatusNotFound, "not_found", err.Error()
	case errors.As(err, &conflict):
		status, code, msg = http.StatusConflict, "conflict", conflict.Error()
	case errors.As(err, &started):
		status, code, msg = http.StatusConflict, "conflict", "a workflow with this id is already running"
	case errors.As(err, &notFound):
		status, code, msg = http.StatusNotFound, "not_found", "workflow not found"
	default:
		s.log.Error("request failed", "method", c.Request.Method, "path", c.FullPath(), "error", err)
	}
	return status, code, msg
}
