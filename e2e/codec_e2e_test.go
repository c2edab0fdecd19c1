package e2e

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"os/exec"
	"strings"
	"testing"

	"github.com/berth-dev/berth"
	"github.com/stretchr/testify/require"
	commonpb "go.temporal.io/api/common/v1"
	enumspb "go.temporal.io/api/enums/v1"
	"google.golang.org/protobuf/proto"
)

// Every payload berth writes to Temporal is sealed: a value from a deploy's
// compose file never appears in the history Temporal stores, while berth's
// own history view, which holds the key, still reads the run.
func TestTemporalPayloadsAreEncrypted(t *testing.T) {
	hs := needHarness(t)
	apps := hs.newEnv(t, "sealed")
	marker := "sealed-marker-" + randHex(8)
	run := hs.deployOK(t, apps, "vault", webCompose("web", 1, fmt.Sprintf("MARKER: %q", marker)))

	it := hs.tc.GetWorkflowHistory(context.Background(), run.WorkflowID, run.TemporalRunID, false,
		enumspb.HISTORY_EVENT_FILTER_TYPE_ALL_EVENT)
	events, sealed := 0, 0
	for it.HasNext() {
		ev, err := it.Next()
		require.NoError(t, err)
		raw, err := proto.Marshal(ev)
		require.NoError(t, err)
		require.False(t, bytes.Contains(raw, []byte(marker)), "event %d (%s) holds the value in plain text", ev.EventId, ev.EventType)
		events++
		// The payloads that carry berth's data: the workflow's input and
		// result, activity inputs and results. (Search attributes stay plain
		// for Temporal to index; berth puts only version markers there.)
		var ps []*commonpb.Payload
		switch {
		case ev.GetWorkflowExecutionStartedEventAttributes() != nil:
			ps = ev.GetWorkflowExecutionStartedEventAttributes().GetInput().GetPayloads()
		case ev.GetActivityTaskScheduledEventAttributes() != nil:
			ps = ev.GetActivityTaskScheduledEventAttributes().GetInput().GetPayloads()
		case ev.GetActivityTaskCompletedEventAttributes() != nil:
			ps = ev.GetActivityTaskCompletedEventAttributes().GetResult().GetPayloads()
		case ev.GetWorkflowExecutionCompletedEventAttributes() != nil:
			ps = ev.GetWorkflowExecutionCompletedEventAttributes().GetResult().GetPayloads()
		}
		for _, p := range ps {
			require.Equal(t, "binary/encrypted", string(p.GetMetadata()["encoding"]), "event %d (%s)", ev.EventId, ev.EventType)
			sealed++
		}
	}
	require.Greater(t, events, 10)
	require.Greater(t, sealed, 5, "the workflow input, activity inputs and results are sealed")

	var page struct {
		Events []struct {
			Text string `json:"text"`
		} `json:"events"`
	}
	require.Equal(t, http.StatusOK, hs.apiJSON(t, "GET", fmt.Sprintf("/api/v1/runs/%d/history?size=200", run.ID), nil, &page))
	require.NotEmpty(t, page.Events)
	texts := ""
	for _, e := range page.Events {
		texts += e.Text + "\n"
	}
	require.Contains(t, texts, "StartInstance", "berth's history view decodes the sealed events")

	// The Temporal CLI shows sealed payloads, and reads them through berth's
	// codec endpoint when an admin's token goes with it.
	show := func(extra ...string) string {
		args := append([]string{"workflow", "show", "--address", hs.temporalAddr, "--namespace", hs.namespace,
			"-w", run.WorkflowID, "-r", run.TemporalRunID, "-o", "json"}, extra...)
		out, err := exec.Command(hs.temporal, args...).Output()
		require.NoError(t, err, "temporal %v: %s", args, out)
		return payloadText(t, out)
	}
	require.NotContains(t, show(), marker)
	decoded := show("--codec-endpoint", hs.apiURL+"/api/v1/codec", "--codec-auth", "Bearer "+hs.token)
	require.Contains(t, decoded, marker, "an operator with the key reads the history")

	// Only platform admins may decode.
	dev := hs.newPerson(t, "dev-"+randHex(3), hs.tenant+"-sealed", berth.RoleDeveloper)
	code, msg := dev.post(t, "/api/v1/codec/decode", map[string]any{"payloads": []any{}}, nil)
	require.Equal(t, http.StatusForbidden, code, msg)
}

// payloadText is every payload's data in the Temporal CLI's JSON output,
// base64-decoded (the CLI prints payload bytes in base64), one per line.
func payloadText(t *testing.T, cliJSON []byte) string {
	t.Helper()
	var doc any
	require.NoError(t, json.Unmarshal(cliJSON, &doc), "%s", cliJSON)
	var b strings.Builder
	var walk func(v any)
	walk = func(v any) {
		switch x := v.(type) {
		case map[string]any:
			for k, e := range x {
				if s, ok := e.(string); ok && k == "data" {
					if raw, err := base64.StdEncoding.DecodeString(s); err == nil {
						b.Write(raw)
						b.WriteByte('\n')
					}
					continue
				}
				walk(e)
			}
		case []any:
			for _, e := range x {
				walk(e)
			}
		}
	}
	walk(doc)
	require.NotZero(t, b.Len(), "the history has payloads")
	return b.String()
}
