// Package core links the Rust core the way the plugin does, for benchmarks and the soak test.
package core

/*
#cgo CFLAGS: -I${SRCDIR}/../../../include
#cgo LDFLAGS: ${SRCDIR}/../../../target/release/libjwk_aggregator.a -ldl -lm -lpthread
#include "jwk_aggregator.h"
*/
import "C"

import (
	"errors"
	"time"
	"unsafe"
)

// Core is one aggregator with one token checker.
type Core struct {
	agg  *C.JwkaAggregator
	auth *C.JwkaAuth
}

func takeErr(b C.JwkaBuf) error {
	if b.data == nil {
		return errors.New("failed")
	}
	defer C.jwka_buf_free(b)
	return errors.New(C.GoStringN((*C.char)(unsafe.Pointer(b.data)), C.int(b.len)))
}

// New creates both from their settings JSON and waits for the first fetch.
func New(settings, auth string) (*Core, error) {
	c := &Core{}
	var e C.JwkaBuf
	if C.jwka_aggregator_new((*C.uint8_t)(unsafe.Pointer(unsafe.StringData(settings))), C.size_t(len(settings)), &c.agg, &e) != C.JWKA_STATUS_OK {
		return nil, takeErr(e)
	}
	if C.jwka_auth_new(c.agg, (*C.uint8_t)(unsafe.Pointer(unsafe.StringData(auth))), C.size_t(len(auth)), &c.auth, &e) != C.JWKA_STATUS_OK {
		return nil, takeErr(e)
	}
	// Wait for the start-up fetch: one GET / does it.
	path := "/"
	var resp C.JwkaHttpResponse
	C.jwka_aggregator_serve(c.agg, (*C.uint8_t)(unsafe.Pointer(unsafe.StringData(path))), 1, &resp)
	C.jwka_buf_free(resp.body)
	time.Sleep(10 * time.Millisecond)
	return c, nil
}

// Check runs one request through the auth handler's decision, as the shim does.
func (c *Core) Check(path, authorization string) int {
	var res C.JwkaAuthResult
	req := C.JwkaRequest{method: bytes("GET"), path: bytes(path), authorization: bytes(authorization)}
	C.jwka_auth_check(c.auth, req, C.JWKA_WAIT_BLOCK, &res, nil)
	C.jwka_buf_free(res.reason)
	C.jwka_buf_free(res.headers)
	C.jwka_buf_free(res.challenge)
	return int(res.outcome)
}

// bytes lends s to one call; "" is absent.
func bytes(s string) C.JwkaBytes {
	if s == "" {
		return C.JwkaBytes{}
	}
	return C.JwkaBytes{data: (*C.uint8_t)(unsafe.Pointer(unsafe.StringData(s))), len: C.size_t(len(s))}
}

// CheckDPoP runs one DPoP request (Authorization: DPoP token, the proof, addressed to
// http://host+path) through the decision, as the shim does, and returns the outcome.
func (c *Core) CheckDPoP(host, path, token, proof string) int {
	var res C.JwkaAuthResult
	authorization := "DPoP " + token
	req := C.JwkaRequest{method: bytes("GET"), path: bytes(path), authorization: bytes(authorization), dpop: bytes(proof),
		scheme: bytes("http"), host: bytes(host), target: bytes(path)}
	C.jwka_auth_check(c.auth, req, C.JWKA_WAIT_BLOCK, &res, nil)
	C.jwka_buf_free(res.reason)
	C.jwka_buf_free(res.headers)
	C.jwka_buf_free(res.challenge)
	return int(res.outcome)
}

// Free releases both.
func (c *Core) Free() {
	C.jwka_auth_free(c.auth)
	C.jwka_aggregator_close(c.agg)
	C.jwka_aggregator_free(c.agg)
}

// Outcomes of Check.
const (
	Unprotected = int(C.JWKA_AUTH_OUTCOME_UNPROTECTED)
	Allow       = int(C.JWKA_AUTH_OUTCOME_ALLOW)
	Invalid     = int(C.JWKA_AUTH_OUTCOME_INVALID)
)

// Serve answers one loopback-server path and returns the status code.
func (c *Core) Serve(path string) int {
	var resp C.JwkaHttpResponse
	C.jwka_aggregator_serve(c.agg, (*C.uint8_t)(unsafe.Pointer(unsafe.StringData(path))), C.size_t(len(path)), &resp)
	C.jwka_buf_free(resp.body)
	return int(resp.status)
}

// DrainLogs discards pending log events and returns how many there were.
func (c *Core) DrainLogs() int {
	n := 0
	for {
		var level C.enum_JwkaLogLevel
		var msg C.JwkaBuf
		if C.jwka_aggregator_next_log(c.agg, 0, &level, &msg) != C.JWKA_STATUS_OK {
			return n
		}
		C.jwka_buf_free(msg)
		n++
	}
}

// Validate checks settings JSON without starting anything. It returns the status and message.
func Validate(settings []byte) (status int, msg string) {
	var e C.JwkaBuf
	var p *C.uint8_t
	if len(settings) > 0 {
		p = (*C.uint8_t)(unsafe.Pointer(&settings[0]))
	}
	st := C.jwka_settings_validate(p, C.size_t(len(settings)), &e)
	if e.data != nil {
		msg = C.GoStringN((*C.char)(unsafe.Pointer(e.data)), C.int(e.len))
		C.jwka_buf_free(e)
	}
	return int(st), msg
}

// Statuses of Validate.
const (
	StatusOK              = int(C.JWKA_STATUS_OK)
	StatusInvalidSettings = int(C.JWKA_STATUS_INVALID_SETTINGS)
)

// Body answers one loopback-server path and returns the status code and the body.
func (c *Core) Body(path string) (int, []byte) {
	var resp C.JwkaHttpResponse
	C.jwka_aggregator_serve(c.agg, (*C.uint8_t)(unsafe.Pointer(unsafe.StringData(path))), C.size_t(len(path)), &resp)
	var body []byte
	if resp.body.data != nil {
		body = C.GoBytes(unsafe.Pointer(resp.body.data), C.int(resp.body.len))
	}
	C.jwka_buf_free(resp.body)
	return int(resp.status), body
}

// Decide runs one request through the auth handler's decision and returns the outcome, the
// reason of a refusal (never the token) and the claim headers of an accepted request.
func (c *Core) Decide(path, authorization, cookies string) (outcome int, reason, headers string) {
	var res C.JwkaAuthResult
	req := C.JwkaRequest{method: bytes("GET"), path: bytes(path), authorization: bytes(authorization), cookies: bytes(cookies)}
	C.jwka_auth_check(c.auth, req, C.JWKA_WAIT_BLOCK, &res, nil)
	C.jwka_buf_free(res.challenge)
	take := func(b C.JwkaBuf) string {
		defer C.jwka_buf_free(b)
		if b.data == nil {
			return ""
		}
		return C.GoStringN((*C.char)(unsafe.Pointer(b.data)), C.int(b.len))
	}
	return int(res.outcome), take(res.reason), take(res.headers)
}

// Outcomes of Decide besides Check's.
const (
	Missing   = int(C.JWKA_AUTH_OUTCOME_MISSING)
	Forbidden = int(C.JWKA_AUTH_OUTCOME_FORBIDDEN)
)

// WithRules is another token checker on the same aggregator, with its own rules (and its own
// verified-token cache); Release frees it.
func (c *Core) WithRules(auth string) (*Core, error) {
	o := &Core{agg: c.agg}
	var e C.JwkaBuf
	if C.jwka_auth_new(c.agg, (*C.uint8_t)(unsafe.Pointer(unsafe.StringData(auth))), C.size_t(len(auth)), &o.auth, &e) != C.JWKA_STATUS_OK {
		return nil, takeErr(e)
	}
	return o, nil
}

// Release frees a checker made by WithRules (not its aggregator).
func (c *Core) Release() {
	C.jwka_auth_free(c.auth)
}
