// Package logship ships logs to the region's log pipeline (rsyslog over
// TCP, see deploy/rsyslog) and reads back what was shipped. Every line is
// tagged with where it comes from, in the syslog tag, as comma-separated
// key=value pairs that rsyslog's rules and berth's search both parse:
//
//	berth,tenant=acme,env=dev,app=shop,service=web,instance=acme-dev-shop-web-1,host=h1,release=v2
//
// Container output is tagged by the engine (the json-file driver copies
// the berth_logtag label into each line) and shipped by rsyslog on the
// host, which reads those files; berth's own processes ship with Writer. The archive rsyslog writes (one file per instance and UTC day)
// is searched by Search and trimmed by Prune. It touches no engine, store
// or workflow.
package logship
