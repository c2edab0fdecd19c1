package server

import (
	"net/http"

	"github.com/gin-gonic/gin"

	"github.com/berth-dev/berth/ui"
)

func mountUI(r *gin.Engine, _ *Server) {
	fsys := http.FS(ui.Static())
	r.GET("/", func(c *gin.Context) { c.FileFromFS("/", fsys) })
}
