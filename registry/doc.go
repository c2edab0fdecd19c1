// Package registry reads and deletes images in the platform's Docker
// registry through its v2 HTTP API (catalog, tags, manifests), for the
// image catalogue. It knows nothing of tenants: the activities that call it
// ask only for the namespaces a tenant may see, and the API checks who may
// delete what. Repository names and references are checked against the
// distribution grammar before they go into a URL, so no caller input shapes
// a request beyond a path segment. It must not import the store, the server
// or Temporal.
package registry
