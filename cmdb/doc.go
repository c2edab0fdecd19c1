// Package cmdb pushes berth's configuration items to an enterprise CMDB.
// berth's own store is the truth; the CMDB gets copies of the parts other
// teams need. Drivers: None (nothing is pushed) and HTTP (idempotent upsert
// and delete by CI id). It must not read berth's store.
package cmdb
