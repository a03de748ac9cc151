// Package bench measures the Go→C→Rust verification path against go-jose, the library behind
// KrakenD's auth/validator, on the same tokens. It links the Rust core the way the plugin does.
package bench

/*
#cgo CFLAGS: -I${SRCDIR}/../../include
#cgo LDFLAGS: ${SRCDIR}/../../target/release/libjwk_aggregator.a -ldl -lm -lpthread
#include "jwk_aggregator.h"
*/
import "C"

import (
	"errors"
	"time"
	"unsafe"
)

type core struct {
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

func newCore(settings, auth string) (*core, error) {
	c := &core{}
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

// check runs one request through the auth handler's decision, as the shim does.
func (c *core) check(path, authorization string) int {
	var res C.JwkaAuthResult
	C.jwka_auth_check(c.auth,
		(*C.uint8_t)(unsafe.Pointer(unsafe.StringData(path))), C.size_t(len(path)),
		(*C.uint8_t)(unsafe.Pointer(unsafe.StringData(authorization))), C.size_t(len(authorization)),
		nil, 0, &res, nil)
	C.jwka_buf_free(res.reason)
	C.jwka_buf_free(res.headers)
	return int(res.outcome)
}

func (c *core) free() {
	C.jwka_auth_free(c.auth)
	C.jwka_aggregator_close(c.agg)
	C.jwka_aggregator_free(c.agg)
}

const outcomeUnprotected, outcomeAllow = int(C.JWKA_AUTH_OUTCOME_UNPROTECTED), int(C.JWKA_AUTH_OUTCOME_ALLOW)
