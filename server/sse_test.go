package server

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net/http"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/berth-dev/berth"
	"github.com/berth-dev/berth/store"
)

// openStream opens a run's event stream with a bearer token and waits for
// its first line, so the stream is counted before the next one opens.
func openStream(t *testing.T, f *apiFixture, runID uint, token string) (*http.Response, *bufio.Reader) {
	t.Helper()
	req, _ := http.NewRequest("GET", fmt.Sprintf("%s/api/v1/runs/%d/events", f.srv.URL, runID), nil)
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	if resp.StatusCode != http.StatusOK {
		return resp, nil
	}
	r := bufio.NewReader(resp.Body)
	_, err = r.ReadString('\n')
	require.NoError(t, err)
	return resp, r
}

func streamFixture(t *testing.T) (*apiFixture, uint, string) {
	t.Helper()
	f := newAPI(t)
	f.s.sseRecheck = 50 * time.Millisecond
	code, _ := f.call("POST", "/api/v1/tenants", f.token, nameRequest{Name: "shop"}, nil)
	require.Equal(t, http.StatusCreated, code)
	shop, err := f.st.TenantByName(context.Background(), "shop")
	require.NoError(t, err)
	tok := f.user("dana", roleRequest{Tenant: "shop", Role: berth.RoleDeveloper})
	run := &store.Run{Kind: berth.KindGate, WorkflowID: "gate/shop/prod/g", TenantID: shop.ID, Subject: "shop/prod/g", StartedBy: "dana", Status: berth.RunRunning}
	require.NoError(t, f.st.CreateRun(context.Background(), run, ""))
	return f, run.ID, tok
}

// A revoked token's open stream ends within seconds, not at the stream's
// maximum age.
func TestStreamsEndWhenTheirTokenIsRevoked(t *testing.T) {
	f, runID, tok := streamFixture(t)
	resp, r := openStream(t, f, runID, tok)
	require.Equal(t, http.StatusOK, resp.StatusCode)
	defer resp.Body.Close()

	u, err := f.st.UserByName(context.Background(), "dana")
	require.NoError(t, err)
	toks, err := f.st.Tokens(context.Background(), u.ID)
	require.NoError(t, err)
	for _, tk := range toks {
		require.NoError(t, f.st.RevokeToken(context.Background(), tk.ID))
	}
	ended := make(chan string, 1)
	go func() {
		rest, _ := io.ReadAll(r)
		ended <- string(rest)
	}()
	select {
	case rest := <-ended:
		require.Contains(t, rest, "event: unauthorized")
	case <-time.After(10 * time.Second):
		t.Fatal("the stream outlived its revoked token")
	}
}

// One user cannot hold open more than maxStreamsPerUser streams; closing
// one lets another open.
func TestStreamsPerUserAreCapped(t *testing.T) {
	f, runID, tok := streamFixture(t)
	var open []*http.Response
	t.Cleanup(func() {
		for _, r := range open {
			r.Body.Close()
		}
	})
	for i := 0; i < maxStreamsPerUser; i++ {
		resp, _ := openStream(t, f, runID, tok)
		require.Equal(t, http.StatusOK, resp.StatusCode, "stream %d", i+1)
		open = append(open, resp)
	}
	resp, _ := openStream(t, f, runID, tok)
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	require.Equal(t, http.StatusTooManyRequests, resp.StatusCode)
	require.Contains(t, string(body), "live pages open already")

	other, _ := openStream(t, f, runID, f.token)
	require.Equal(t, http.StatusOK, other.StatusCode, "another user is not held back")
	open = append(open, other)

	open[0].Body.Close()
	require.Eventually(t, func() bool {
		resp, _ := openStream(t, f, runID, tok)
		ok := resp.StatusCode == http.StatusOK
		if ok {
			open = append(open, resp)
		} else {
			resp.Body.Close()
		}
		return ok
	}, 10*time.Second, 50*time.Millisecond, "a closed stream frees its place")
}
