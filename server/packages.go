package server

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/berth-dev/berth"
	"github.com/berth-dev/berth/artifacts"
	"github.com/berth-dev/berth/store"
)

// PackageStore keeps uploaded application packages, content-addressed.
type PackageStore interface {
	Put(ctx context.Context, name string, r io.Reader, wantSHA256 string) (*artifacts.Package, error)
}

func isMultipart(c *gin.Context) bool {
	mt, _, err := mime.ParseMediaType(c.GetHeader("Content-Type"))
	return err == nil && mt == "multipart/form-data"
}

// createFileRelease streams an uploaded package into the artifact store
// (checked, content-addressed, nothing written outside its staging folder)
// and starts a file release that installs it into the running instances.
// Form fields: version, sha256 (optional, verified), batchSize, then the
// file part "package" last.
func (s *Server) createFileRelease(c *gin.Context) {
	s.createPackageRelease(c, false)
}

// createPackageRelease reads a multipart package upload. With grey, the
// form also carries the grey release's document (field grey, YAML or JSON,
// without image) and the package is built into the canary's image.
func (s *Server) createPackageRelease(c *gin.Context, grey bool) {
	ctx := c.Request.Context()
	if s.cfg.Packages == nil {
		s.fail(c, &berth.Error{Code: berth.ENotImplemented, Reason: "no_artifact_store", Message: "this server has no artifact store configured"})
		return
	}
	sc, err := s.serviceContext(c)
	if err != nil {
		s.fail(c, err)
		return
	}
	room, err := s.store.PackageRoom(ctx, sc.Environment.ID)
	if err != nil {
		s.fail(c, err)
		return
	}
	mr, err := c.Request.MultipartReader()
	if err != nil {
		s.fail(c, badRequest("body must be multipart/form-data"))
		return
	}
	fields := map[string]string{}
	var pkg *artifacts.Package
	for {
		part, err := mr.NextPart()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			s.fail(c, uploadError(err))
			return
		}
		name := part.FormName()
		if name == "package" {
			var body io.Reader = part
			if room.Bytes >= 0 {
				body = &quotaReader{r: part, room: room}
			}
			pkg, err = s.cfg.Packages.Put(ctx, part.FileName(), body, fields["sha256"])
			part.Close()
			if err != nil {
				s.fail(c, putError(err))
				return
			}
			continue
		}
		known := name == "version" || name == "sha256" || name == "batchSize" || name == "progressDeadline" || name == "build" || name == "command"
		if grey {
			known = name == "version" || name == "sha256" || name == "grey" || name == "build" || name == "command"
		}
		if !known {
			part.Close()
			s.fail(c, badRequest("unknown form field "+strconv.Quote(name)))
			return
		}
		limit := int64(256)
		switch name {
		case "command":
			limit = maxCommandBytes
		case "grey":
			limit = maxGreyDoc
		}
		v, err := io.ReadAll(io.LimitReader(part, limit+1))
		part.Close()
		if err != nil {
			s.fail(c, uploadError(err))
			return
		}
		if int64(len(v)) > limit {
			s.fail(c, badRequest(fmt.Sprintf("form field %s is longer than %d bytes", name, limit)))
			return
		}
		fields[name] = strings.TrimSpace(string(v))
		if name == "grey" && pkg == nil {
			// Checked as it arrives, so a bad document is refused before
			// the package is stored.
			if _, err := greyOfPackage(fields[name], "0"); err != nil {
				s.fail(c, err)
				return
			}
		}
	}
	if pkg == nil {
		s.fail(c, badRequest("the form needs a file part named package (after version, sha256 and batchSize)"))
		return
	}
	version := fields["version"]
	if version == "" {
		version = pkg.SHA256[:12]
	}
	if !versionRE.MatchString(version) {
		s.fail(c, badRequest("version must be 1-128 characters of letters, digits and . _ + -"))
		return
	}
	batch := 0
	if v := fields["batchSize"]; v != "" {
		if batch, err = strconv.Atoi(v); err != nil || batch < 0 {
			s.fail(c, badRequest("batchSize must be a non-negative number"))
			return
		}
	}
	deadline := 15 * time.Minute
	if v := fields["progressDeadline"]; v != "" {
		d, err := time.ParseDuration(v)
		if err != nil || d < 10*time.Second || d > 24*time.Hour {
			s.fail(c, badRequest("progressDeadline must be a duration between 10s and 24h"))
			return
		}
		deadline = d
	}
	rs := releaseSpec{kind: berth.ReleaseFile, version: version, batch: batch, deadline: deadline, pkg: pkg}
	switch fields["build"] {
	case "", "false":
	case "true":
		if fields["command"] != "" {
			s.fail(c, badRequest("command is for file releases, not with build=true"))
			return
		}
		rs.kind, rs.build = berth.ReleaseImage, true
	default:
		s.fail(c, badRequest("build must be true or false"))
		return
	}
	if v := fields["command"]; v != "" {
		cmd, err := s.checkCommand(v)
		if err != nil {
			s.fail(c, err)
			return
		}
		rs.command = cmd
	}
	if grey {
		// The package is the canary: installed into canary instances of
		// the stable image (a file release), or built into its image.
		gs, err := greyOfPackage(fields["grey"], version)
		if err != nil {
			s.fail(c, err)
			return
		}
		gs.kind, gs.build, gs.pkg, gs.command = rs.kind, rs.build, pkg, rs.command
		rs = gs
	}
	s.startReleaseOf(c, rs)
}

// quotaReader refuses a package upload as soon as it passes the room left
// under its quotas, so nothing over the quota is ever stored: the artifact
// store drops what it staged when its reader fails.
type quotaReader struct {
	r    io.Reader
	room store.PackageRoom
	n    int64
}

func (q *quotaReader) Read(p []byte) (int, error) {
	n, err := q.r.Read(p)
	q.n += int64(n)
	if q.n > q.room.Bytes {
		return n, &berth.Error{Code: berth.ETooLarge, Reason: "package_quota",
			Message: "the package does not fit: " + q.room.Why + "; a later release frees the packages of releases before the last good one"}
	}
	return n, err
}

// maxCommandBytes bounds the command form field (8 arguments of 256 bytes, quoted).
const maxCommandBytes = 4096

// checkCommand parses a post-upload command: a JSON array of at most 8
// strings of at most 256 bytes, no NUL, whose first is an absolute path on
// the server's allowlist (BERTH_EXEC_ALLOW). It is run with exec, never
// through a shell.
func (s *Server) checkCommand(v string) ([]string, error) {
	var cmd []string
	if err := json.Unmarshal([]byte(v), &cmd); err != nil {
		return nil, badRequest("command must be a JSON array of strings")
	}
	if len(cmd) == 0 || len(cmd) > 8 {
		return nil, badRequest("command must have 1 to 8 elements")
	}
	for _, a := range cmd {
		if len(a) > 256 || strings.ContainsRune(a, 0) {
			return nil, badRequest("each command argument must be at most 256 bytes, without NUL")
		}
	}
	for _, allowed := range s.cfg.ExecAllow {
		if cmd[0] == allowed && strings.HasPrefix(allowed, "/") {
			return cmd, nil
		}
	}
	if len(s.cfg.ExecAllow) == 0 {
		return nil, badRequest("no command is allowed on this server (BERTH_EXEC_ALLOW is empty)")
	}
	return nil, badRequest(fmt.Sprintf("command %q is not allowed; allowed: %s", cmd[0], strings.Join(s.cfg.ExecAllow, ", ")))
}

// uploadError maps the artifact store's refusals to HTTP answers.
func uploadError(err error) error {
	var mb *http.MaxBytesError
	switch {
	case errors.As(err, &mb), errors.Is(err, artifacts.ErrTooLarge):
		return &berth.Error{Code: berth.ETooLarge, Message: "package is larger than the limit"}
	case errors.Is(err, artifacts.ErrChecksum):
		return &berth.Error{Code: berth.EUnprocessable, Reason: "checksum_mismatch", Message: err.Error()}
	case errors.Is(err, artifacts.ErrInvalid):
		return &berth.Error{Code: berth.EUnprocessable, Reason: "invalid_package", Message: err.Error()}
	}
	return badRequest("upload failed: " + err.Error())
}

// putError is uploadError for the store itself: anything it does not name is
// the server's fault (a full disk, say), not the client's.
func putError(err error) error {
	var mb *http.MaxBytesError
	if errors.As(err, &mb) || errors.Is(err, artifacts.ErrTooLarge) || errors.Is(err, artifacts.ErrChecksum) || errors.Is(err, artifacts.ErrInvalid) {
		return uploadError(err)
	}
	return err
}

// packagePruner is a package store that can forget packages.
type packagePruner interface {
	Prune(ctx context.Context, grace time.Duration, inUse func(sha string) bool) ([]string, error)
}

// PrunePackages removes uploaded packages that no release refers to once
// they are older than grace: uploads refused after their package part, or
// abandoned, would otherwise fill the disk. It returns the digests removed.
func (s *Server) PrunePackages(ctx context.Context, grace time.Duration) ([]string, error) {
	p, ok := s.cfg.Packages.(packagePruner)
	if !ok {
		return nil, nil
	}
	inUse, err := s.store.PackagesInUse(ctx)
	if err != nil {
		return nil, err
	}
	return p.Prune(ctx, grace, func(sha string) bool { return inUse[sha] })
}
