package main

/*
#include "jwk_aggregator.h"

// The answer comes back by value: a result Go passed by address would move to the Go heap and
// be walked by cgo's pointer check on every request.
typedef struct {
	enum JwkaStatus status;
	JwkaAuthResult result;
} shim_check_t;

static shim_check_t shim_check(const JwkaAuth *auth, JwkaRequest request, enum JwkaWait wait) {
	shim_check_t c;
	c.status = jwka_auth_check(auth, request, wait, &c.result, NULL);
	return c;
}
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
	// setsHeaders: the core must see every request's header names to remove a client's copies
	// of the claim headers its rules set.
	setsHeaders bool
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
	h := &authHandler{handle: handle, agg: agg, next: next, setsHeaders: bool(C.jwka_auth_sets_headers(handle))}
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

// cbytes lends s to one call into the core; "" is absent.
func cbytes(s string) C.JwkaBytes {
	if s == "" {
		return C.JwkaBytes{}
	}
	return C.JwkaBytes{data: (*C.uint8_t)(unsafe.Pointer(unsafe.StringData(s))), len: C.size_t(len(s))}
}

// ServeHTTP hands the request to the core and applies its answer as it stands: pass on (after
// the header edits it lists), or the status and challenge it names. Every decision, the CORS
// preflight's and which headers are a client's copy of a claim header included, is the core's.
func (h *authHandler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	path := r.URL.Path
	// Every Authorization header: a request carrying two is refused whole, never half verified.
	req := C.JwkaRequest{
		method:        cbytes(r.Method),
		path:          cbytes(path),
		authorization: cbytes(strings.Join(r.Header["Authorization"], "\n")),
		cookies:       cbytes(strings.Join(r.Header["Cookie"], "; ")),
		// What a DPoP proof or a certificate binding is checked against.
		dpop:   cbytes(strings.Join(r.Header["Dpop"], "\n")),
		scheme: cbytes("http"),
		host:   cbytes(r.Host),
		target: cbytes(r.RequestURI),
		// Every value: the core refuses to rebuild a URI from more than one.
		forwarded_proto: cbytes(strings.Join(r.Header["X-Forwarded-Proto"], ",")),
		forwarded_host:  cbytes(strings.Join(r.Header["X-Forwarded-Host"], ",")),
	}
	if r.TLS != nil {
		req.scheme = cbytes("https")
		// A client certificate counts only once the TLS handshake verified it.
		if len(r.TLS.VerifiedChains) > 0 && len(r.TLS.PeerCertificates) > 0 {
			req.client_cert = cbytes(string(r.TLS.PeerCertificates[0].Raw))
		}
	}
	if h.setsHeaders {
		names := make([]string, 0, len(r.Header))
		for k := range r.Header {
			names = append(names, k)
		}
		req.header_names = cbytes(strings.Join(names, "\n"))
	}
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
		c := C.shim_check(h.handle, req, wait)
		h.asks.Add(1)
		h.mu.RUnlock()
		if c.status != C.JWKA_STATUS_OK {
			log().Error(logPrefix, authName, "internal error:", C.GoString(C.jwka_status_str(c.status)))
			http.Error(w, "", http.StatusInternalServerError)
			return
		}
		res = c.result
		reason, headers, challenge = takeBuf(res.reason), takeBuf(res.headers), takeBuf(res.challenge)
		if res.outcome != C.JWKA_AUTH_OUTCOME_PENDING {
			break
		}
		// Its keys are being fetched (a first discovery, an unknown kid): wait here, in Go,
		// until the core says the source it waits for is ready or the wait it allows is over,
		// then ask again (the core kept the token parsed for that).
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
		if len(challenge) > 0 {
			w.Header().Set("WWW-Authenticate", string(challenge))
		}
		w.WriteHeader(int(res.status))
		return
	}
	if len(headers) > 0 {
		for _, line := range strings.Split(string(headers), "\n") {
			if name, value, set := strings.Cut(line, "\t"); set {
				r.Header.Set(name, value)
			} else if line != "" {
				delete(r.Header, name)
			}
		}
	}
	h.next.ServeHTTP(w, r)
}
