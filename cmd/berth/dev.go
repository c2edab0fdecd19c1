package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"time"

	sdklog "go.temporal.io/sdk/log"
)

// newTemporalLogger keeps the SDK's chatter at warnings and above.
func newTemporalLogger(log *slog.Logger) sdklog.Logger {
	return sdklog.NewStructuredLogger(slog.New(warnOnly{log.Handler()}))
}

type warnOnly struct{ slog.Handler }

func (w warnOnly) Enabled(_ context.Context, l slog.Level) bool { return l >= slog.LevelWarn }

// bootstrapDev makes a fresh embedded system usable at once: the local engine
// is registered as host "local" (or checked again), and tenant "demo" with
// environment "dev" may place on it. It goes through the API, so the runs and
// the audit log show it like any other request.
func bootstrapDev(ctx context.Context, cfg *Config, log *slog.Logger) error {
	base := "http://" + cfg.Listen
	call := func(method, path string, body any) (int, []byte, error) {
		var rd io.Reader
		if body != nil {
			b, _ := json.Marshal(body)
			rd = bytes.NewReader(b)
		}
		req, err := http.NewRequestWithContext(ctx, method, base+path, rd)
		if err != nil {
			return 0, nil, err
		}
		req.Header.Set("Authorization", "Bearer "+cfg.Token)
		req.Header.Set("Content-Type", "application/json")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return 0, nil, err
		}
		defer resp.Body.Close()
		out, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, out, nil
	}
	for i := 0; ; i++ {
		if code, _, err := call("GET", "/healthz", nil); err == nil && code == 200 {
			break
		}
		if i > 100 {
			return fmt.Errorf("API did not come up on %s", base)
		}
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(100 * time.Millisecond):
		}
	}
	code, _, err := call("GET", "/api/v1/hosts/local", nil)
	if err != nil {
		return err
	}
	if code == http.StatusNotFound {
		code, body, err := call("POST", "/api/v1/hosts", map[string]string{"name": "local", "region": "local",
			"endpoint": cfg.LocalEndpoint, "ip": cfg.LocalIP})
		if err != nil || code != http.StatusAccepted {
			return fmt.Errorf("register local host: %d %s %v", code, body, err)
		}
	} else if code, body, err := call("POST", "/api/v1/hosts/local/check", nil); err != nil || (code != http.StatusAccepted && code != http.StatusConflict) {
		log.Warn("local host check not started", "status", code, "body", string(body), "error", err)
	}
	if code, _, _ := call("GET", "/api/v1/tenants/demo/environments/dev", nil); code == http.StatusNotFound {
		_, _, _ = call("POST", "/api/v1/tenants", map[string]string{"name": "demo"})
		_, _, _ = call("POST", "/api/v1/tenants/demo/environments", map[string]string{"name": "dev"})
		if code, body, err := call("POST", "/api/v1/tenants/demo/environments/dev/hosts", map[string][]string{"hosts": {"local"}}); err != nil || code != http.StatusOK {
			log.Warn("demo environment not authorised on local host", "status", code, "body", string(body), "error", err)
		}
	}
	fmt.Printf("\nberth is up.\n  web UI:      %s/ (user admin; its password was printed on the first start)\n", base)
	fmt.Printf("  berth:       %s\n  API:         %s/api/v1 (Authorization: Bearer <token in %s/api-token>)\n", base, base, cfg.DataDir)
	if cfg.TemporalUIURL != "" {
		fmt.Printf("  Temporal UI: %s\n", cfg.TemporalUIURL)
	}
	fmt.Printf("  try:         curl -H \"Authorization: Bearer $(cat %s/api-token)\" --data-binary @testdata/compose/single.yaml -H 'Content-Type: application/yaml' '%s/api/v1/tenants/demo/environments/dev/applications?name=hello'\n\n", cfg.DataDir, base)
	return nil
}
