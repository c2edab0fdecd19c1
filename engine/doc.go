// Package engine is berth's driver for Docker engines: the part of the moby
// client berth uses (Engine), a pool of clients per endpoint, and the rule
// for which endpoints berth talks to at all (CheckEndpoint: unix sockets, or
// TCP with TLS client certificates, plain TCP on loopback only).
//
// It decides nothing about containers; the activities do that through it.
// The server may call CheckEndpoint to refuse a host before recording it.
package engine
