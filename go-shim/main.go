// Command jwk-aggregator is a KrakenD http-server plugin. It only reads the configuration, manages
// the lifecycle, serves HTTP on loopback and calls the Rust core (include/jwk_aggregator.h), which
// holds all the logic: settings, fetching, sanitizing, merging, health and metrics.
package main

/*
#cgo CFLAGS: -I${SRCDIR}/../include
// The Rust library (of the wanted libc) comes through CGO_LDFLAGS from the Makefile.
#cgo LDFLAGS: -ldl -lm -lpthread
#include <stdlib.h>
#include "jwk_aggregator.h"
*/
import "C"

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"reflect"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
	"unsafe"
)

const pluginName = "jwk-aggregator"
const authName = "jwk-aggregator-auth"
const logPrefix = "[PLUGIN: " + pluginName + "]"

// abiVersion is the version of the header this shim was compiled against.
const abiVersion = C.JWKA_ABI_VERSION

// HandlerRegisterer is the symbol KrakenD's http-server plugin loader looks up.
var HandlerRegisterer = registerer(pluginName)

type registerer string

// Logger is the subset of KrakenD's logger the plugin uses.
type Logger interface {
	Debug(v ...interface{})
	Info(v ...interface{})
	Warning(v ...interface{})
	Error(v ...interface{})
	Critical(v ...interface{})
}

type noopLogger struct{}

func (noopLogger) Debug(...interface{})    {}
func (noopLogger) Info(...interface{})     {}
func (noopLogger) Warning(...interface{})  {}
func (noopLogger) Error(...interface{})    {}
func (noopLogger) Critical(...interface{}) {}

var (
	loggerMu sync.RWMutex
	logger   Logger = noopLogger{}
)

func log() Logger {
	loggerMu.RLock()
	defer loggerMu.RUnlock()
	return logger
}

// RegisterLogger receives KrakenD's logger.
func (registerer) RegisterLogger(v interface{}) {
	l, ok := v.(Logger)
	if !ok {
		return
	}
	loggerMu.Lock()
	logger = l
	loggerMu.Unlock()
	l.Debug(logPrefix, "logger loaded")
}

// RegisterHandlers registers the plugin's handler factories with KrakenD.
func (r registerer) RegisterHandlers(f func(
	name string,
	handler func(context.Context, map[string]interface{}, http.Handler) (http.Handler, error),
)) {
	f(string(r), r.newHandler)
	f(authName, newAuthHandler)
}

// newHandler starts the aggregator's loopback server and returns the gateway's handler untouched,
// so gateway traffic pays nothing for this plugin.
func (registerer) newHandler(ctx context.Context, extra map[string]interface{}, next http.Handler) (http.Handler, error) {
	if _, err := sharedAggregator(ctx, extra); err != nil {
		return nil, err
	}
	return next, nil
}

// One aggregator per gateway: both handlers get KrakenD's root context and the whole
// plugin/http-server block, and whichever factory runs first starts it.
var shared = struct {
	sync.Mutex
	byKey map[sharedKey]sharedResult
}{byKey: map[sharedKey]sharedResult{}}

type sharedKey struct {
	ctx      context.Context
	settings string
}

type sharedResult struct {
	agg *aggregator
	err error
}

func sharedAggregator(ctx context.Context, extra map[string]interface{}) (*aggregator, error) {
	block := normalize(extra[pluginName])
	settings, err := json.Marshal(block)
	if err != nil {
		err = fmt.Errorf("cannot read the %q settings: %v", pluginName, err)
		log().Error(logPrefix, err.Error())
		return nil, err
	}
	if !reflect.TypeOf(ctx).Comparable() {
		// A context that cannot be a map key (never KrakenD's) cannot be shared: start one here.
		agg, err := start(ctx, settings)
		if err != nil {
			log().Error(logPrefix, err.Error())
		}
		return agg, err
	}
	key := sharedKey{ctx, string(settings)}
	shared.Lock()
	defer shared.Unlock()
	if r, ok := shared.byKey[key]; ok {
		return r.agg, r.err
	}
	agg, err := start(ctx, settings)
	if err != nil {
		log().Error(logPrefix, err.Error())
	}
	shared.byKey[key] = sharedResult{agg, err}
	if done := ctx.Done(); done != nil {
		go func() {
			<-done
			shared.Lock()
			delete(shared.byKey, key)
			shared.Unlock()
		}()
	}
	return agg, err
}

// aggregator owns one Rust handle. mu keeps free from racing with calls still in flight.
type aggregator struct {
	mu     sync.RWMutex
	handle *C.JwkaAggregator
	logs   sync.WaitGroup
	// wake is the core's log socket, read in Go's poller by pumpLogs, and keys its keys socket,
	// read by pumpKeys; nil when the core could not make one. Go must not wait in a C call: the
	// goroutine keeps its scheduler slot (P) until Go's monitor takes it back, up to about 10 ms
	// later, and every request queued on that slot waits meanwhile.
	wake, keys *os.File
	// poll says requests may be told to come back: the keys socket works. Without it they wait
	// inside C, as before.
	poll atomic.Bool
	// closing is set before the core is closed, so that pumpKeys ends at its last wake-up.
	closing atomic.Bool
	// waits holds a channel for each source a request told to come back (JWKA_AUTH_OUTCOME_PENDING)
	// waits for, closed when the core names that source ready: only the requests waiting for a
	// fetch that ended wake, and log lines wake none.
	waitsMu sync.Mutex
	waits   map[uint64]chan struct{}
}

// maxWaits bounds the channels of sources waited for; past it every waiting request is woken and
// asks again (channels of sources whose requests left early are dropped that way too).
const maxWaits = 10000

// waitFor is the channel closed when the core next names source id ready. Ask the core again
// after taking it, so that a fetch that ended in between is not missed.
func (a *aggregator) waitFor(id uint64) <-chan struct{} {
	a.waitsMu.Lock()
	defer a.waitsMu.Unlock()
	ch, ok := a.waits[id]
	if !ok {
		if len(a.waits) >= maxWaits {
			a.wakeAllLocked()
		}
		ch = make(chan struct{})
		a.waits[id] = ch
	}
	return ch
}

// wakeWaiting closes the channels of the sources named ready.
func (a *aggregator) wakeWaiting(ids []uint64) {
	a.waitsMu.Lock()
	defer a.waitsMu.Unlock()
	for _, id := range ids {
		if ch, ok := a.waits[id]; ok {
			close(ch)
			delete(a.waits, id)
		}
	}
}

// wakeAll wakes every waiting request, which asks again: the keys socket failed, the aggregator
// closes, or too many sources are waited for.
func (a *aggregator) wakeAll() {
	a.waitsMu.Lock()
	defer a.waitsMu.Unlock()
	a.wakeAllLocked()
}

func (a *aggregator) wakeAllLocked() {
	for id, ch := range a.waits {
		close(ch)
		delete(a.waits, id)
	}
}

func start(ctx context.Context, settings []byte) (*aggregator, error) {
	if v := uint32(C.jwka_abi_version()); v != abiVersion {
		return nil, fmt.Errorf("the Rust core has ABI version %d but the shim was built for %d: rebuild the plugin with `make build`", v, abiVersion)
	}
	agg, err := newAggregator(settings)
	if err != nil {
		return nil, err
	}
	port := int(C.jwka_aggregator_port(agg.handle))
	listeners, err := listenLoopback(port)
	if err != nil {
		agg.free()
		return nil, err
	}
	agg.logs.Add(1)
	go agg.pumpLogs()
	if agg.keys != nil {
		agg.logs.Add(1)
		go agg.pumpKeys()
	}

	srv := &http.Server{
		Handler:           agg,
		ReadHeaderTimeout: 5 * time.Second,
		// Origin fetches are bounded by the Rust timeouts; this bounds a slow reader.
		WriteTimeout:   2 * time.Minute,
		MaxHeaderBytes: 16 << 10,
	}
	for _, ln := range listeners {
		go func(ln net.Listener) {
			if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
				log().Error(logPrefix, "server on", ln.Addr().String(), "stopped:", err.Error())
			}
		}(ln)
	}
	log().Info(logPrefix, "serving the merged JWK Set on http://127.0.0.1:"+fmt.Sprint(port)+"/")
	go func() {
		<-ctx.Done()
		shutdown, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = srv.Shutdown(shutdown)
		agg.free()
	}()
	return agg, nil
}

// listenLoopback binds 127.0.0.1:port, and [::1]:port where IPv6 exists, so that no other
// process can answer the validator's "localhost" lookups on the other family.
func listenLoopback(port int) ([]net.Listener, error) {
	v4, err := net.Listen("tcp4", fmt.Sprintf("127.0.0.1:%d", port))
	if err != nil {
		return nil, fmt.Errorf("cannot listen on 127.0.0.1:%d (\"port\" %d): %v", port, port, err)
	}
	v6, err := net.Listen("tcp6", fmt.Sprintf("[::1]:%d", port))
	switch {
	case err == nil:
		return []net.Listener{v4, v6}, nil
	case errors.Is(err, syscall.EADDRINUSE):
		v4.Close()
		return nil, fmt.Errorf("cannot listen on [::1]:%d (\"port\" %d): another process holds it and would answer requests for localhost:%d: %v", port, port, port, err)
	default:
		return []net.Listener{v4}, nil // no IPv6 loopback on this machine
	}
}

// normalize turns YAML-style map[interface{}]interface{} into JSON-encodable maps.
func normalize(v interface{}) interface{} {
	switch t := v.(type) {
	case map[interface{}]interface{}:
		m := make(map[string]interface{}, len(t))
		for k, val := range t {
			m[fmt.Sprint(k)] = normalize(val)
		}
		return m
	case map[string]interface{}:
		m := make(map[string]interface{}, len(t))
		for k, val := range t {
			m[k] = normalize(val)
		}
		return m
	case []interface{}:
		out := make([]interface{}, len(t))
		for i, val := range t {
			out[i] = normalize(val)
		}
		return out
	default:
		return v
	}
}

func takeBuf(b C.JwkaBuf) []byte {
	if b.data == nil {
		return nil
	}
	out := C.GoBytes(unsafe.Pointer(b.data), C.int(b.len))
	C.jwka_buf_free(b)
	return out
}

// settingsError turns a failed constructor's status and message buffer into an error (nil on
// success), freeing the buffer either way.
func settingsError(status C.enum_JwkaStatus, errBuf C.JwkaBuf) error {
	msg := string(takeBuf(errBuf))
	if status == C.JWKA_STATUS_OK {
		return nil
	}
	if msg == "" {
		msg = C.GoString(C.jwka_status_str(status))
	}
	return fmt.Errorf("configuration error: %s", msg)
}

func newAggregator(settings []byte) (*aggregator, error) {
	var handle *C.JwkaAggregator
	var errBuf C.JwkaBuf
	var ptr *C.uint8_t
	if len(settings) > 0 {
		ptr = (*C.uint8_t)(unsafe.Pointer(&settings[0]))
	}
	status := C.jwka_aggregator_new(ptr, C.size_t(len(settings)), &handle, &errBuf)
	if err := settingsError(status, errBuf); err != nil {
		return nil, err
	}
	a := &aggregator{handle: handle}
	a.waits = map[uint64]chan struct{}{}
	// Non-blocking descriptors, so os.NewFile puts them in Go's poller.
	if fd := int(C.jwka_aggregator_wake_fd(handle)); fd >= 0 {
		a.wake = os.NewFile(uintptr(fd), "jwk-aggregator log socket")
	}
	if fd := int(C.jwka_aggregator_keys_fd(handle)); fd >= 0 {
		a.keys = os.NewFile(uintptr(fd), "jwk-aggregator keys socket")
		a.poll.Store(true)
	}
	return a, nil
}

// ServeHTTP answers GET/HEAD on the loopback port; the Rust core routes the path.
func (a *aggregator) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	a.mu.RLock()
	if a.handle == nil {
		a.mu.RUnlock()
		http.Error(w, "shutting down", http.StatusServiceUnavailable)
		return
	}
	path := r.URL.Path
	if path == "" {
		path = "/"
	}
	var resp C.JwkaHttpResponse
	cpath := (*C.uint8_t)(unsafe.Pointer(unsafe.StringData(path)))
	status := C.jwka_aggregator_serve(a.handle, cpath, C.size_t(len(path)), &resp)
	a.mu.RUnlock()
	if status != C.JWKA_STATUS_OK {
		log().Error(logPrefix, "internal error serving", strconv.Quote(path)+":", C.GoString(C.jwka_status_str(status)))
		http.Error(w, `{"error":"internal error"}`, http.StatusInternalServerError)
		return
	}
	body := takeBuf(resp.body)
	h := w.Header()
	h.Set("Content-Type", C.GoString(resp.content_type))
	h.Set("Cache-Control", "no-store")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Content-Length", fmt.Sprint(len(body)))
	w.WriteHeader(int(resp.status))
	if r.Method == http.MethodGet {
		_, _ = w.Write(body)
	}
}

// pumpLogs moves the core's log events to KrakenD's logger until the aggregator closes. It waits
// for them on the log socket, in Go's poller (without one, inside the core).
func (a *aggregator) pumpLogs() {
	defer a.logs.Done()
	buf := make([]byte, 512)
	wake := a.wake
	for {
		waitMs := C.uint32_t(250)
		if wake != nil {
			if _, err := wake.Read(buf); err != nil {
				log().Error(logPrefix, "log socket:", err.Error(), "- waiting inside the core for log events from now on")
				wake = nil
			} else {
				waitMs = 0
			}
		}
		if !a.drainLogs(waitMs) {
			return
		}
	}
}

// pumpKeys wakes the requests told to come back (JWKA_AUTH_OUTCOME_PENDING) whenever the core
// names the source they wait for ready, until the aggregator closes.
func (a *aggregator) pumpKeys() {
	defer a.logs.Done()
	buf := make([]byte, 512)
	ready := make([]C.uint64_t, 64)
	ids := make([]uint64, 0, len(ready))
	for {
		if _, err := a.keys.Read(buf); err != nil {
			if !a.closing.Load() {
				log().Error(logPrefix, "keys socket:", err.Error(), "- requests wait inside the core from now on")
			}
			a.poll.Store(false)
			a.wakeAll()
			return
		}
		for {
			var n C.size_t
			a.mu.RLock()
			if a.handle != nil {
				C.jwka_aggregator_next_ready(a.handle, &ready[0], C.size_t(len(ready)), &n)
			}
			a.mu.RUnlock()
			ids = ids[:0]
			for _, id := range ready[:n] {
				ids = append(ids, uint64(id))
			}
			a.wakeWaiting(ids)
			if int(n) < len(ready) {
				break
			}
		}
		if a.closing.Load() {
			a.wakeAll()
			return
		}
	}
}

// drainLogs logs the queued events, waiting up to waitMs for the first. Returns false once the
// aggregator is closed and every event was delivered.
func (a *aggregator) drainLogs(waitMs C.uint32_t) bool {
	for {
		var level C.enum_JwkaLogLevel
		var msg C.JwkaBuf
		a.mu.RLock()
		if a.handle == nil {
			a.mu.RUnlock()
			return false
		}
		status := C.jwka_aggregator_next_log(a.handle, waitMs, &level, &msg)
		a.mu.RUnlock()
		switch status {
		case C.JWKA_STATUS_OK:
			text := string(takeBuf(msg))
			l := log()
			switch level {
			case C.JWKA_LOG_LEVEL_DEBUG:
				l.Debug(logPrefix, text)
			case C.JWKA_LOG_LEVEL_INFO:
				l.Info(logPrefix, text)
			case C.JWKA_LOG_LEVEL_WARNING:
				l.Warning(logPrefix, text)
			case C.JWKA_LOG_LEVEL_ERROR:
				l.Error(logPrefix, text)
			default:
				l.Critical(logPrefix, text)
			}
		case C.JWKA_STATUS_EMPTY:
			return true
		default:
			return false
		}
	}
}

// free closes the log queue, waits for the pump to drain it, and releases the Rust handle once
// no call is in flight.
func (a *aggregator) free() {
	a.closing.Store(true)
	a.mu.RLock()
	if a.handle != nil {
		C.jwka_aggregator_close(a.handle)
	}
	a.mu.RUnlock()
	a.logs.Wait()
	for _, f := range []*os.File{a.wake, a.keys} {
		if f != nil {
			f.Close()
		}
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.handle != nil {
		C.jwka_aggregator_free(a.handle)
		a.handle = nil
	}
}

func main() {}
