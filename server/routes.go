package server

import (
	"net/http"
	"strings"

	"github.com/gin-gonic/gin"

	"github.com/berth-dev/berth/ui"
)

// route is one row of the route table: the Gin registration and the
// authorization come from the same row, so no route is served under a rule
// other than the one written next to it. TestRouteTable holds openapi.yaml
// to the API's rows.
type route struct {
	method  string
	path    string
	handler gin.HandlerFunc
	policy  policy
}

// routes is every route berth serves.
func (s *Server) routes() []route {
	return []route{
		// Served before sign-in, so nothing here may show a record.
		{"GET", "/healthz", s.healthz, public},
		// Counts only, no records; MetricsToken closes it where wanted.
		{"GET", "/metrics", s.metricsPage, public},
		{"GET", "/api/v1/openapi.yaml", openapi, public},
		{"GET", "/static/*file", staticFiles(http.FS(ui.Static())), public},
		{"GET", "/login", s.loginPage, public},
		{"POST", "/login", s.login, public},

		// Pages. The admin pages mirror the API routes they stand for.
		{"POST", "/logout", s.logout, anyone},
		{"GET", "/", s.gridPage, anyone},       // narrowed in the handler
		{"GET", "/inbox", s.inboxPage, anyone}, // narrowed in the handler
		{"GET", "/runs", s.runsPage, anyone},   // narrowed in the handler
		{"GET", "/map", s.mapPage, anyone},     // narrowed in the handler
		{"GET", "/runs/:id", s.runPage, readable(runScope, "run")},
		{"GET", "/runs/:id/history", s.runHistoryPage, readable(runScope, "run")},
		{"GET", "/services/:id", s.servicePage, readable(serviceParam, "service")},
		{"GET", "/services/:id/history", s.serviceHistoryPageView, readable(serviceParam, "service")},
		{"GET", "/instances/:name/terminal", s.terminalPage, need(instanceParam, "a terminal", readRoles...)},
		{"GET", "/internal/terminals/:id", s.workerTerminal, public},       // a worker relaying a terminal; it proves itself
		{"POST", "/api/v1/hooks/alertmanager", s.alertmanagerHook, public}, // Alertmanager's webhook; it proves itself with its bearer token
		{"GET", "/images", s.imagesPage, anyone},                           // narrowed in the handler
		{"GET", "/audit", s.auditPage, anyone},                             // the whole log for auditRoles, else the caller's own actions
		{"GET", "/admin/hosts", s.hostsPage, need(platform, "the hosts page", adminRoles...)},
		{"POST", "/admin/hosts", s.registerHostForm, need(platform, "registering a host", adminRoles...)},
		{"GET", "/admin/environments", s.environmentsPage, need(platform, "the environments page", adminRoles...)},

		// The API: each route here is also in openapi.yaml (TestRouteTable).
		{"GET", "/api/v1/me", s.me, anyone},
		{"GET", "/api/v1/users", s.listUsers, need(platform, "listing users", adminRoles...)},
		{"POST", "/api/v1/users", s.createUser, need(platform, "creating users", adminRoles...)},
		{"POST", "/api/v1/users/:name/roles", s.grantRole, anyone},          // needs admin on the tenant in the body; checked in the handler
		{"DELETE", "/api/v1/users/:name/roles/:role", s.revokeRole, anyone}, // needs admin where the role applies; checked in the handler
		{"POST", "/api/v1/users/:name/disable", s.setUserDisabled(true), need(platform, "disabling users", adminRoles...)},
		{"POST", "/api/v1/users/:name/enable", s.setUserDisabled(false), need(platform, "enabling users", adminRoles...)},
		{"POST", "/api/v1/users/:name/password", s.resetPassword, need(platform, "resetting passwords", adminRoles...)},
		{"GET", "/api/v1/users/:name/tokens", s.userTokens, need(platform, "listing users' tokens", adminRoles...)},
		{"PUT", "/api/v1/me/password", s.changePassword, anyone},
		{"GET", "/api/v1/tokens", s.listTokens, anyone},
		{"POST", "/api/v1/tokens", s.createToken, anyone},
		{"DELETE", "/api/v1/tokens/:id", s.revokeToken, anyone}, // own tokens; admins any

		{"GET", "/api/v1/approvals", s.listApprovals, anyone},              // narrowed in the handler
		{"GET", "/api/v1/approvals/:id", s.getApproval, anyone},            // checked in the handler
		{"POST", "/api/v1/approvals/:id/decide", s.decideApproval, anyone}, // the store checks the approval's roles
		{"POST", "/api/v1/tenants/:tenant/environments/:env/gates", s.startGate, need(tenantParam, "starting an approval gate", deployRoles...)},

		{"POST", "/api/v1/hosts", s.createHost, need(platform, "registering a host", adminRoles...)},
		// Hosts are the platform's: their endpoints, addresses and load are
		// not a tenant's business, and only platform admins assign them.
		{"GET", "/api/v1/hosts", s.listHosts, need(platform, "reading hosts", readRoles...)},
		{"GET", "/api/v1/regions", s.listRegions, need(platform, "reading regions", readRoles...)},
		{"PUT", "/api/v1/regions/:region/lb", s.setRegionLB, need(platform, "setting a region's load balancer", adminRoles...)},
		{"GET", "/api/v1/hosts/:host", s.getHost, need(platform, "reading a host", readRoles...)},
		{"POST", "/api/v1/hosts/:host/check", s.checkHost, need(platform, "checking a host", adminRoles...)},
		{"POST", "/api/v1/hosts/:host/drain", s.drainHost, need(platform, "draining a host", adminRoles...)},
		{"POST", "/api/v1/hosts/:host/undrain", s.undrainHost, need(platform, "undraining a host", adminRoles...)},

		{"POST", "/api/v1/tenants", s.createTenant, need(platform, "creating a tenant", adminRoles...)},
		{"GET", "/api/v1/tenants", s.listTenants, anyone}, // narrowed in the handler
		{"POST", "/api/v1/tenants/:tenant/secrets", s.putSecret, need(tenantParam, "writing a secret", deployRoles...)},
		{"GET", "/api/v1/tenants/:tenant/secrets", s.listSecrets, need(tenantParam, "reading secret names", readRoles...)},
		{"GET", "/api/v1/tenants/:tenant/images", s.listImages, need(tenantParam, "reading the image catalogue", readRoles...)},
		{"DELETE", "/api/v1/tenants/:tenant/images", s.deleteImage, need(tenantParam, "deleting an image version", deployRoles...)},
		{"POST", "/api/v1/tenants/:tenant/environments", s.createEnvironment, need(tenantParam, "creating an environment", adminRoles...)},
		{"GET", "/api/v1/tenants/:tenant/environments", s.listEnvironments, need(tenantParam, "reading environments", readRoles...)},
		{"GET", "/api/v1/tenants/:tenant/environments/:env", s.getEnvironment, need(tenantParam, "reading an environment", readRoles...)},
		{"PUT", "/api/v1/tenants/:tenant/environments/:env/limits", s.setLimits, need(tenantParam, "setting an environment's limits", adminRoles...)},
		{"PUT", "/api/v1/tenants/:tenant/environments/:env/quota", s.setEnvironmentQuota, need(tenantParam, "setting an environment's quota", adminRoles...)},
		{"PUT", "/api/v1/tenants/:tenant/quota", s.setTenantQuota, need(platform, "setting a tenant's quota", adminRoles...)},
		{"GET", "/api/v1/capacity", s.getCapacity, anyone}, // narrowed in the handler
		{"POST", "/api/v1/reconcile", s.reconcileNow, need(platform, "running the reconciler", adminRoles...)},
		{"POST", "/api/v1/tenants/:tenant/environments/:env/hosts", s.authoriseHosts, need(platform, "authorising hosts for an environment", adminRoles...)},

		{"POST", "/api/v1/tenants/:tenant/environments/:env/applications", s.deployApplication, need(tenantParam, "deploying", deployRoles...)},
		{"GET", "/api/v1/tenants/:tenant/environments/:env/applications", s.listApplications, need(tenantParam, "reading applications", readRoles...)},
		{"GET", "/api/v1/tenants/:tenant/environments/:env/applications/:app", s.getApplication, need(tenantParam, "reading an application", readRoles...)},
		{"GET", "/api/v1/tenants/:tenant/environments/:env/applications/:app/versions", s.listVersions, need(tenantParam, "reading an application's versions", readRoles...)},
		{"GET", "/api/v1/tenants/:tenant/environments/:env/applications/:app/versions/:n", s.getVersion, need(tenantParam, "reading an application's version", readRoles...)},
		{"PUT", "/api/v1/tenants/:tenant/environments/:env/applications/:app", s.updateApplication, need(tenantParam, "updating an application", deployRoles...)},
		{"POST", "/api/v1/tenants/:tenant/environments/:env/applications/:app/versions", s.redeployVersion, need(tenantParam, "redeploying an application's version", deployRoles...)},
		{"DELETE", "/api/v1/tenants/:tenant/environments/:env/applications/:app", s.deleteApplication, need(tenantParam, "deleting an application", deployRoles...)},

		{"GET", "/api/v1/services/:id", s.getService, need(serviceParam, "reading a service", readRoles...)},
		{"POST", "/api/v1/services/:id/scale", s.scaleService, need(serviceParam, "scaling", deployRoles...)},
		{"GET", "/api/v1/services/:id/pool", s.getPool, need(serviceParam, "reading a pool", readRoles...)},
		{"POST", "/api/v1/services/:id/releases", s.createRelease, need(serviceParam, "releasing", deployRoles...)},
		{"GET", "/api/v1/services/:id/releases", s.listReleases, need(serviceParam, "reading releases", readRoles...)},
		{"POST", "/api/v1/services/:id/rollback", s.rollback, need(serviceParam, "rolling back", rollbackRoles...)},
		{"POST", "/api/v1/services/:id/grey", s.createGrey, need(serviceParam, "starting a grey release", deployRoles...)},
		{"GET", "/api/v1/services/:id/grey", s.getGrey, need(serviceParam, "reading a grey release", readRoles...)},
		{"POST", "/api/v1/services/:id/grey/:action", s.controlGrey, need(serviceParam, "promoting, aborting or pausing a grey release", rollbackRoles...)},
		{"POST", "/api/v1/services/:id/clone", s.cloneService, need(serviceParam, "cloning a service", deployRoles...)},
		{"GET", "/api/v1/services/:id/history", s.serviceHistory, need(serviceParam, "reading a service's history", readRoles...)},
		{"GET", "/api/v1/releases/:id", s.getRelease, need(releaseScope, "reading a release", readRoles...)},

		{"POST", "/api/v1/instances/:name/restart", s.restartInstance, need(instanceParam, "restarting an instance", operateRoles...)},
		{"POST", "/api/v1/instances/:name/stop", s.stopInstance, need(instanceParam, "stopping an instance", operateRoles...)},
		{"POST", "/api/v1/instances/:name/start", s.startInstance, need(instanceParam, "starting an instance", operateRoles...)},
		{"POST", "/api/v1/instances/:name/commit", s.commitInstance, need(instanceParam, "committing an instance", deployRoles...)},
		{"GET", "/api/v1/instances/:name/stats", s.instanceStats, need(instanceParam, "reading an instance's stats", readRoles...)},
		{"GET", "/api/v1/instances/:name/logs", s.instanceLogs, need(instanceParam, "reading an instance's logs", readRoles...)},
		{"GET", "/api/v1/instances/:name/logs/search", s.searchInstanceLogs, need(instanceParam, "searching an instance's shipped logs", readRoles...)},
		{"GET", "/api/v1/instances/:name/terminal", s.openTerminal, need(instanceParam, "opening a terminal", readRoles...)}, // WebSocket; the environment's roles are checked in the handler
		{"POST", "/api/v1/instances/:name/terminal/access", s.requestTerminalAccess, need(instanceParam, "asking for terminal access", deployRoles...)},
		{"GET", "/api/v1/terminals", s.listTerminals, anyone}, // narrowed in the handler

		{"GET", "/api/v1/firewall/openings", s.listOpenings, need(platform, "reading firewall openings", readRoles...)},
		{"GET", "/api/v1/cmdb", s.listCMDB, need(platform, "reading the CMDB", readRoles...)},
		{"POST", "/api/v1/cmdb/sync", s.syncCMDB, need(platform, "syncing the CMDB", adminRoles...)},
		{"POST", "/api/v1/cmdb/resync", s.resyncCMDB, need(platform, "resyncing the CMDB", adminRoles...)},
		{"GET", "/api/v1/incidents", s.listIncidents, need(platform, "reading incidents", readRoles...)},

		{"GET", "/api/v1/runs", s.listRuns, anyone}, // narrowed in the handler
		{"GET", "/api/v1/runs/:id", s.getRun, need(runScope, "reading a run", readRoles...)},
		{"GET", "/api/v1/runs/:id/events", s.runEvents, need(runScope, "following a run", readRoles...)},
		{"GET", "/api/v1/runs/:id/history", s.runHistory, need(runScope, "reading a run's history", readRoles...)},
		{"POST", "/api/v1/runs/:id/cancel", s.cancelRun, cancelPolicy},
		{"POST", "/api/v1/runs/:id/retry", s.retryRun, retryPolicy},
		{"POST", "/api/v1/runs/:id/firewall/confirm", s.confirmFirewall, need(runScope, "confirming a firewall ticket", ticketRoles...)},

		{"GET", "/api/v1/audit", s.listAudit, need(platform, "reading the audit log", auditRoles...)},

		// Temporal's remote-codec protocol, for operators who read sealed
		// histories in the Temporal UI or CLI: the key never leaves berth.
		{"POST", "/api/v1/codec/decode", s.decodePayloads, need(platform, "decoding Temporal payloads", adminRoles...)},
	}
}

// mount registers every route behind the middleware its kind needs.
func (s *Server) mount(r *gin.Engine) {
	for _, rt := range s.routes() {
		r.Handle(rt.method, rt.path, append(s.middleware(rt), rt.handler)...)
	}
}

// middleware is what runs before a route's handler. The API takes a bearer
// token or the session and audits every change; pages take the session and
// answer refusals with a page; public routes sign no one in.
func (s *Server) middleware(rt route) []gin.HandlerFunc {
	pol := rt.policy
	if !pol.public && pol.check == nil {
		// A route added without a policy is closed, not open.
		pol = need(platform, rt.method+" "+rt.path, adminRoles...)
	}
	api := strings.HasPrefix(rt.path, "/api/")
	switch {
	case pol.public && (api || rt.path == "/healthz" || rt.path == "/metrics"):
		// Read by programs: no page headers, and no body to bound.
		return nil
	case pol.public && unsafeMethod(rt.method):
		// The sign-in form's POST is the only public route with a body.
		return []gin.HandlerFunc{securityHeaders, s.limitBody}
	case pol.public:
		return []gin.HandlerFunc{securityHeaders}
	case api:
		// Denied requests pass the audit too: authorize runs inside it.
		return []gin.HandlerFunc{s.limitBody, s.authenticate, s.audit, s.authorize(pol)}
	default:
		return []gin.HandlerFunc{securityHeaders, s.limitBody, s.uiAuth, s.authorizePage(pol)}
	}
}
