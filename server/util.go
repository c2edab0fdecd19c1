package server

import (
	"errors"
	"net/http"
	"strconv"

	"github.com/gin-gonic/gin"
)

func asMaxBytes(err error, target **http.MaxBytesError) bool { return errors.As(err, target) }

// idParam reads the route's numeric :id, naming what it is in the error.
func idParam(c *gin.Context, what string) (uint, error) {
	id, err := strconv.ParseUint(c.Param("id"), 10, 32)
	if err != nil {
		return 0, badRequest(what + " id must be a number")
	}
	return uint(id), nil
}
