package store_test

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/berth-dev/berth"
	"github.com/berth-dev/berth/store"
)

// A terminal session is recorded as it opens and as it ends; an approved
// access request grants terminals into its service for its minutes from
// the approval, and a pending, rejected or spent one grants nothing.
func TestTerminalSessionsAndGrants(t *testing.T) {
	forEachBackend(t, func(t *testing.T, st *store.Store) {
		ctx := context.Background()
		ts := &store.TerminalSession{ID: "abc123", User: "dana", TenantID: 7, Subject: "acme/prod/shop/web/i1", Instance: "i1", Host: "h1", Command: "/bin/sh"}
		require.NoError(t, st.CreateTerminalSession(ctx, ts))
		code := 3
		require.NoError(t, st.EndTerminalSession(ctx, "abc123", []byte("echo hi; exit 3\r"), false, &code, "exited"))
		require.Error(t, st.EndTerminalSession(ctx, "abc123", nil, false, nil, "again"), "a session ends once")
		got, err := st.TerminalSessions(ctx, []uint{7}, "i1", 0)
		require.NoError(t, err)
		require.Len(t, got, 1)
		require.Equal(t, "echo hi; exit 3\r", got[0].Transcript)
		require.Equal(t, 3, *got[0].ExitCode)
		none, err := st.TerminalSessions(ctx, []uint{8}, "", 0)
		require.NoError(t, err)
		require.Empty(t, none, "another tenant's sessions are not listed")

		// A session whose server died keeps what was saved of it.
		open := &store.TerminalSession{ID: "def456", User: "dana", TenantID: 7, Subject: "acme/prod/shop/web/i1", Instance: "i1", Host: "h1", Command: "/bin/sh"}
		require.NoError(t, st.CreateTerminalSession(ctx, open))
		require.NoError(t, st.SaveTranscript(ctx, "def456", []byte("ls\r"), false))
		ids, err := st.OpenTerminalSessions(ctx, time.Now().Add(time.Minute))
		require.NoError(t, err)
		require.Equal(t, []string{"def456"}, ids, "the ended session is not open")
		ids, err = st.OpenTerminalSessions(ctx, time.Now().Add(-time.Minute))
		require.NoError(t, err)
		require.Empty(t, ids, "a session younger than the cutoff is left")
		require.NoError(t, st.AbandonTerminalSession(ctx, "def456", "the server relaying it stopped"))
		back, err := st.TerminalSession(ctx, "def456")
		require.NoError(t, err)
		require.Equal(t, "ls\r", back.Transcript)
		require.Equal(t, "the server relaying it stopped", back.EndReason)
		require.NotNil(t, back.EndedAt)
		require.Nil(t, back.ExitCode)

		ask := func(status berth.RunStatus, minutes int, finished time.Time) {
			t.Helper()
			in, _ := json.Marshal(store.TerminalAccessInput{Minutes: minutes})
			r := &store.Run{Kind: berth.KindTerminalAccess, WorkflowID: "terminal-access/x", Subject: "acme/prod/shop/web", StartedBy: "dana",
				Input: string(in), Status: status}
			require.NoError(t, st.CreateRun(ctx, r, ""))
			require.NoError(t, st.DB().Model(r).Update("finished_at", finished).Error)
		}
		until, err := st.TerminalGrant(ctx, "dana", "acme/prod/shop/web")
		require.NoError(t, err)
		require.Nil(t, until)
		ask(berth.RunFailed, 30, time.Now())
		until, err = st.TerminalGrant(ctx, "dana", "acme/prod/shop/web")
		require.NoError(t, err)
		require.Nil(t, until, "a rejected request grants nothing")
		ask(berth.RunSucceeded, 30, time.Now().Add(-40*time.Minute))
		until, err = st.TerminalGrant(ctx, "dana", "acme/prod/shop/web")
		require.NoError(t, err)
		require.Nil(t, until, "a spent grant grants nothing")
		ask(berth.RunSucceeded, 30, time.Now().Add(-10*time.Minute))
		until, err = st.TerminalGrant(ctx, "dana", "acme/prod/shop/web")
		require.NoError(t, err)
		require.NotNil(t, until)
		require.WithinDuration(t, time.Now().Add(20*time.Minute), *until, 5*time.Second)
		other, err := st.TerminalGrant(ctx, "eve", "acme/prod/shop/web")
		require.NoError(t, err)
		require.Nil(t, other, "a grant is the asker's alone")
	})
}
