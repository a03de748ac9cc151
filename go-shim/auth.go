package main

/*
#include "jwk_aggregator.h"
*/
import "C"

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unsafe"
)

// authHandler protects the endpoint paths its rules list; the Rust core decides every request.
type authHandler struct {
	mu     sync.RWMutex
	handle *C.JwkaAuth
	agg    *aggregator // for its wake-ups only
	next   http.Handler
	// asks counts the calls into the core: what waiting for keys costs (tests, benchmarks).
	asks atomic.Int64
}

// newAuthHandler builds the jwk-aggregator-auth handler. It never returns an error: KrakenD
// would skip a failed handler and leave the endpoints it should protect open, so a bad
// configuration refuses every request instead (fail closed), loudly.
func newAuthHandler(ctx context.Context, extra map[string]interface{}, next http.Handler) (http.Handler, error) {
	h, err := buildAuth(ctx, extra, next)
	if err != nil {
		log().Critical(logPrefix, authName+":", err.Error(), "- every request is refused with 503 until the configuration is fixed")
		return failClosed{}, nil
	}
	return h, nil
}

func buildAuth(ctx context.Context, extra map[string]interface{}, next http.Handler) (*authHandler, error) {
	settings, err := json.Marshal(normalize(extra[authName]))
	if err != nil {
		return nil, fmt.Errorf("cannot read the %q settings: %v", authName, err)
	}
	agg, err := sharedAggregator(ctx, extra)
	if err != nil {
		return nil, fmt.Errorf("the %q block failed, so there are no keys: %v", pluginName, err)
	}
	var handle *C.JwkaAuth
	var errBuf C.JwkaBuf
	agg.mu.RLock()
	status := C.jwka_auth_new(agg.handle, (*C.uint8_t)(unsafe.Pointer(&settings[0])), C.size_t(len(settings)), &handle, &errBuf)
	agg.mu.RUnlock()
	if err := settingsError(status, errBuf); err != nil {
		return nil, err
	}
	h := &authHandler{handle: handle, agg: agg, next: next}
	go func() {
		<-ctx.Done()
		h.mu.Lock()
		C.jwka_auth_free(h.handle)
		h.handle = nil
		h.mu.Unlock()
	}()
	log().Info(logPrefix, authName, "protecting the paths of its rules")
	return h, nil
}

type failClosed struct{}

func (failClosed) ServeHTTP(w http.ResponseWriter, _ *http.Request) {
	http.Error(w, "", http.StatusServiceUnavailable)
}

func cbytes(s string) (*C.uint8_t, C.size_t) {
	if s == "" {
		return nil, 0
	}
	return (*C.uint8_t)(unsafe.Pointer(unsafe.StringData(s))), C.size_t(len(s))
}

// ServeHTTP hands the request to the core and applies its answer as it stands: pass on (after
// setting the claim headers), or the status and challenge it names. Every decision, the CORS
// preflight's included, is the core's.
func (h *authHandler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	// Every Authorization header: a request carrying two is refused whole, never half verified.
	path, authz := r.URL.Path, strings.Join(r.Header.Values("Authorization"), "\n")
	cookies := strings.Join(r.Header.Values("Cookie"), "; ")
	mp, ml := cbytes(r.Method)
	pp, pl := cbytes(path)
	ap, al := cbytes(authz)
	cp, cl := cbytes(cookies)
	var res C.JwkaAuthResult
	var reason, headers, challenge []byte
	wait := C.enum_JwkaWait(C.JWKA_WAIT_BLOCK)
	if h.agg.poll.Load() {
		wait = C.JWKA_WAIT_PENDING
	}
	var deadline *time.Timer
	var woken <-chan struct{} // closed when the source this request waits for is ready
	var waitingFor uint64
	for {
		h.mu.RLock()
		if h.handle == nil {
			h.mu.RUnlock()
			http.Error(w, "", http.StatusServiceUnavailable)
			return
		}
		status := C.jwka_auth_check(h.handle, mp, ml, pp, pl, ap, al, cp, cl, wait, &res, nil)
		h.asks.Add(1)
		h.mu.RUnlock()
		if status != C.JWKA_STATUS_OK {
			log().Error(logPrefix, authName, "internal error:", C.GoString(C.jwka_status_str(status)))
			http.Error(w, "", http.StatusInternalServerError)
			return
		}
		reason, headers, challenge = takeBuf(res.reason), takeBuf(res.headers), takeBuf(res.challenge)
		if res.outcome != C.JWKA_AUTH_OUTCOME_PENDING {
			break
		}
		// Its keys are being fetched (a first discovery, an unknown kid): wait here, in Go,
		// until the core says the source it waits for is ready or the wait it allows is over,
		// then ask again.
		if deadline == nil {
			deadline = time.NewTimer(time.Duration(res.wait_ms) * time.Millisecond)
			defer deadline.Stop()
		}
		if woken == nil || uint64(res.wait_source) != waitingFor {
			// Take the source's channel, then ask once more: a fetch that ended between the
			// answer and now is not missed.
			waitingFor = uint64(res.wait_source)
			woken = h.agg.waitFor(waitingFor)
			continue
		}
		select {
		case <-woken:
			woken = nil
		case <-deadline.C:
			wait = C.JWKA_WAIT_EXPIRED
		}
	}
	if res.status != 0 {
		// Quoted: the path and the reason (an issuer, a kid) come from the client and must not
		// write log lines of their own.
		log().Debug(logPrefix, authName, "refused", strconv.Quote(path), "with", strconv.Itoa(int(res.status))+":", strconv.Quote(string(reason)))
		w.Header().Set("WWW-Authenticate", string(challenge))
		w.WriteHeader(int(res.status))
		return
	}
	for _, line := range strings.Split(string(headers), "\n") {
		if line == "" {
			continue
		}
		name, value, set := strings.Cut(line, "\t")
		dropClientCopies(r.Header, name)
		if set {
			r.Header.Set(name, value)
		}
	}
	h.next.ServeHTTP(w, r)
}

// dropClientCopies removes every header a backend could read as the claim header name: any
// case, '-' or '_' (CGI-style backends read X-User and X_User both as HTTP_X_USER), repeated.
func dropClientCopies(h http.Header, name string) {
	want := headerFold(name)
	for k := range h {
		if headerFold(k) == want {
			delete(h, k)
		}
	}
}

func headerFold(name string) string {
	return strings.ReplaceAll(strings.ToLower(name), "_", "-")
}
