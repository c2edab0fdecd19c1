package server

import (
	"context"
	"fmt"
	"net/http"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/berth-dev/berth"
	"github.com/berth-dev/berth/store"
)

// shopPageFixture is tenant shop with environment dev, developer dana and
// release manager rm.
func shopPageFixture(t *testing.T) (*apiFixture, *store.Environment) {
	t.Helper()
	f := newAPI(t)
	code, _ := f.call("POST", "/api/v1/tenants", f.token, nameRequest{Name: "shop"}, nil)
	require.Equal(t, http.StatusCreated, code)
	code, _ = f.call("POST", "/api/v1/tenants/shop/environments", f.token, environmentRequest{Name: "dev"}, nil)
	require.Equal(t, http.StatusCreated, code)
	f.user("dana", roleRequest{Tenant: "shop", Role: berth.RoleDeveloper})
	f.user("rm", roleRequest{Tenant: "shop", Role: berth.RoleReleaseManager})
	env, err := f.st.Environment(context.Background(), "shop", "dev")
	require.NoError(t, err)
	return f, env
}

// TestServicePageUpdateForm: a developer gets the "Change the application"
// form with the running file, escaped; a reader and a developer of an
// application that is not running get the reason instead of the form.
func TestServicePageUpdateForm(t *testing.T) {
	f, env := shopPageFixture(t)
	db := f.st.DB()
	file := "services:\n  web:\n    image: r/web:1\n    environment: {GREETING: \"</textarea><script>x()</script>\"}\n"
	app := &store.Application{EnvironmentID: env.ID, Name: "shop-app", State: berth.StateRunning, Compose: file}
	require.NoError(t, db.Create(app).Error)
	web := &store.Service{ApplicationID: app.ID, Name: "web", Image: "r/web:1", State: berth.StateRunning}
	require.NoError(t, db.Create(web).Error)
	page := fmt.Sprintf("/services/%d", web.ID)

	code, body := f.browser("dana").page(t, page)
	require.Equal(t, http.StatusOK, code)
	require.Contains(t, body, `<form class="update-form" method="post" action="/api/v1/tenants/shop/environments/dev/applications/shop-app"`)
	require.Contains(t, body, `{GREETING: &#34;&lt;/textarea&gt;&lt;script&gt;x()&lt;/script&gt;&#34;}`, "the file is escaped into the textarea")
	require.NotContains(t, body, "<script>x()")

	code, body = f.browser("rm").page(t, page)
	require.Equal(t, http.StatusOK, code)
	require.NotContains(t, body, "update-form")
	require.Contains(t, body, "Changing the application needs role developer or admin on tenant shop.")

	require.NoError(t, db.Model(app).Update("state", berth.StateDeploying).Error)
	_, body = f.browser("dana").page(t, page)
	require.NotContains(t, body, "update-form")
	require.Contains(t, body, "The application is deploying; only a running application can be changed.")
}

// TestServicePageRunForms: a developer gets the scale, release and rollback
// forms, the rollback offering only earlier releases that went well; a
// release manager may roll back only and is told why the others are missing.
func TestServicePageRunForms(t *testing.T) {
	f, env := shopPageFixture(t)
	db := f.st.DB()
	app := &store.Application{EnvironmentID: env.ID, Name: "shop-app", State: berth.StateRunning, Compose: "services: {}\n"}
	require.NoError(t, db.Create(app).Error)
	web := &store.Service{ApplicationID: app.ID, Name: "web", Image: "r/web:3", State: berth.StateRunning}
	require.NoError(t, db.Create(web).Error)
	var ids []uint
	for _, r := range []store.Release{
		{ServiceID: web.ID, Kind: berth.ReleaseImage, Version: "1", Image: "r/web:1", Outcome: berth.ReleaseSucceeded},
		{ServiceID: web.ID, Kind: berth.ReleaseImage, Version: "2", Image: "r/web:2", Outcome: berth.ReleaseFailed},
		{ServiceID: web.ID, Kind: berth.ReleaseImage, Version: "3", Image: "r/web:3", Outcome: berth.ReleaseSucceeded},
		{ServiceID: web.ID, Kind: berth.ReleaseFile, Version: "3.1", PackageSHA256: "ab", Outcome: berth.ReleaseSucceeded},
	} {
		require.NoError(t, db.Create(&r).Error)
		ids = append(ids, r.ID)
	}
	require.NoError(t, db.Create(&store.ServiceReleases{ServiceID: web.ID, CurrentID: ids[2], LastGoodID: ids[2]}).Error)
	page := fmt.Sprintf("/services/%d", web.ID)
	base := fmt.Sprintf("/api/v1/services/%d", web.ID)

	code, body := f.browser("dana").page(t, page)
	require.Equal(t, http.StatusOK, code)
	for _, action := range []string{"scale", "releases", "rollback"} {
		require.Contains(t, body, `<form class="run-form" method="post" action="`+base+"/"+action+`"`)
	}
	require.Contains(t, body, `<form class="run-form upload-form" method="post" action="`+base+`/releases" enctype="multipart/form-data"`)
	require.Contains(t, body, fmt.Sprintf(`<option value="%d">1 (r/web:1)`, ids[0]))
	require.NotContains(t, body, fmt.Sprintf(`<option value="%d">`, ids[1]), "a failed release is no rollback target")
	require.NotContains(t, body, fmt.Sprintf(`<option value="%d">`, ids[2]), "nor is the running one")
	require.NotContains(t, body, fmt.Sprintf(`<option value="%d">`, ids[3]), "nor a file release, which the API refuses to return to")

	code, body = f.browser("rm").page(t, page)
	require.Equal(t, http.StatusOK, code)
	require.NotContains(t, body, `action="`+base+`/scale"`)
	require.NotContains(t, body, `action="`+base+`/releases"`, "neither release form")
	require.Contains(t, body, `action="`+base+`/rollback"`)
	require.Contains(t, body, "Scaling and releasing needs role developer or admin on tenant shop.")
}
