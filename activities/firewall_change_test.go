package activities

import (
	"context"
	"errors"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.temporal.io/sdk/temporal"

	"github.com/berth-dev/berth/firewall"
	"github.com/berth-dev/berth/firewall/changeapi"
	"github.com/berth-dev/berth/firewall/changeapi/changeapitest"
)

// A change is submitted once, followed until decided: applied opens,
// rejected is a non-retryable error with the team's reason; a close of
// what the team never opened is done at once, and a retried open finds
// its change by id.
func TestOpenByChangeFollowsTheChange(t *testing.T) {
	team := changeapitest.New(300 * time.Millisecond)
	srv := httptest.NewServer(team)
	defer srv.Close()
	fw := &Firewall{Driver: firewall.None{}, Change: changeapi.NewHTTP(srv.URL, ""), ChangePoll: 50 * time.Millisecond, ChangeTimeout: time.Minute}
	ctx := context.Background()
	ops := []firewall.Opening{{ID: "acme-dev-shop-web-1/8080-tcp", Protocol: "tcp", DestIP: "10.0.0.1", DestPort: 20001}}

	res, err := fw.OpenByChange(ctx, ChangeInput{Openings: ops, Reason: "berth run 7"})
	require.NoError(t, err)
	require.True(t, team.Open(ops[0].ID))
	again, err := fw.OpenByChange(ctx, ChangeInput{Openings: ops, Reason: "berth run 7"})
	require.NoError(t, err)
	require.Equal(t, res.ID, again.ID)
	require.Len(t, team.Changes("acme-dev-shop-web-1/"), 1, "a retry finds the same change")

	team.RejectFor("acme-dev-shop-web-2/", "no (CHG-1)")
	_, err = fw.OpenByChange(ctx, ChangeInput{Openings: []firewall.Opening{{ID: "acme-dev-shop-web-2/8080-tcp", Protocol: "tcp", DestIP: "10.0.0.1", DestPort: 20002}}})
	var ae *temporal.ApplicationError
	require.True(t, errors.As(err, &ae))
	require.Equal(t, FirewallRejected, ae.Type())
	require.True(t, ae.NonRetryable())
	require.Contains(t, err.Error(), "no (CHG-1)")

	require.NoError(t, fw.Close(ctx, []string{"never-opened-1/80-tcp"}))
	require.NoError(t, fw.Close(ctx, []string{ops[0].ID}))
	require.False(t, team.Open(ops[0].ID))

	slow := &Firewall{Driver: firewall.None{}, Change: changeapi.NewHTTP(srv.URL, ""), ChangePoll: 20 * time.Millisecond, ChangeTimeout: 100 * time.Millisecond}
	team.SetDelay(time.Hour)
	_, err = slow.OpenByChange(ctx, ChangeInput{Openings: []firewall.Opening{{ID: "acme-dev-shop-web-3/8080-tcp", Protocol: "tcp", DestIP: "10.0.0.1", DestPort: 20003}}})
	require.ErrorContains(t, err, "was not decided within 100ms")
	_, err = (&Firewall{Driver: firewall.None{}}).OpenByChange(ctx, ChangeInput{Openings: ops})
	require.ErrorContains(t, err, "no change API")
}
