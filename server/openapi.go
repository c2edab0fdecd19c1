package server

import (
	_ "embed"
	"net/http"

	"github.com/gin-gonic/gin"
)

// openapiDoc documents every /api/v1 route of the table; TestRouteTable keeps it so.
//
//go:embed openapi.yaml
var openapiDoc []byte

// openapi serves the API's description to anyone: it holds no secrets.
func openapi(c *gin.Context) {
	c.Header("Cache-Control", "no-cache")
	c.Data(http.StatusOK, "application/yaml; charset=utf-8", openapiDoc)
}
