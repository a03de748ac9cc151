package main

// BenchmarkWaitingWhileLogging: what requests waiting for a dynamic tenant's first discovery
// (~1 s) cost while the core logs many lines. Its first version (commit e7225d1) ran unchanged on
// the shim before the per-source keys socket (f0fd2db) as well, for the figures side by side in
// BENCHMARKS.md; this one measures the current shim only.
//
// Log lines: the aggregator is also given M loopback origins with "cache": false and
// "min_refresh_interval": "0", so every GET / of the merged set fetches each origin and the core
// queues one DEBUG "fetched ..." line per origin through its log queue. A paced producer issues
// those GETs in process at the wanted line rate; the lines reaching the logger are counted, so the
// rate reported is the rate achieved.
//
// Each iteration: fresh aggregator; producer on; 200 ms warm-up; 1 s baseline windows (producer
// alone: its CPU per second and cgo calls per second); then N requests for one undiscovered tenant
// whose discovery document answers after 1 s; the wait window ends when all N are answered.
// Reported per waiting request: CPU of the process (getrusage user+sys) in the wait window, the
// same minus the producer's baseline CPU for that time (what waiting adds), cgo calls likewise,
// calls into the core (authHandler.asks), wall time to the last answer, and the share of answers
// that were 200.

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// wbLogger counts what the core and the shim log; it records nothing else.
type wbLogger struct {
	fetched atomic.Int64 // the core's DEBUG "fetched ..." lines
	all     atomic.Int64
}

func (l *wbLogger) line(v []interface{}) {
	l.all.Add(1)
	if len(v) > 1 {
		if s, ok := v[1].(string); ok && strings.HasPrefix(s, "fetched ") {
			l.fetched.Add(1)
		}
	}
}
func (l *wbLogger) Debug(v ...interface{})    { l.line(v) }
func (l *wbLogger) Info(v ...interface{})     { l.line(v) }
func (l *wbLogger) Warning(v ...interface{})  { l.line(v) }
func (l *wbLogger) Error(v ...interface{})    { l.line(v) }
func (l *wbLogger) Critical(v ...interface{}) { l.line(v) }

func wbCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// wbOrigin serves a static key set at once.
func wbOrigin(b *testing.B, kid string) string {
	body := fmt.Sprintf(`{"keys":[{"kty":"OKP","crv":"Ed25519","kid":%q,"x":"11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"}]}`, kid)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		io.WriteString(w, body)
	}))
	b.Cleanup(srv.Close)
	return srv.URL + "/jwks.json"
}

const wbOrigins = 16 // log lines per GET of the merged set

// wbProduce GETs the merged set in process, paced so that the core logs about rate lines a
// second (wbOrigins per GET), on a few workers, until stop is closed.
func wbProduce(agg *aggregator, rate int, stop <-chan struct{}, wg *sync.WaitGroup) {
	if rate <= 0 {
		return
	}
	gets := float64(rate) / wbOrigins
	tokens := make(chan struct{}, 1024)
	const workers = 6
	for i := 0; i < workers; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				case <-tokens:
					rec := httptest.NewRecorder()
					agg.ServeHTTP(rec, httptest.NewRequest("GET", "/", nil))
				}
			}
		}()
	}
	wg.Add(1)
	go func() {
		defer wg.Done()
		t0 := time.Now()
		sent := 0
		tick := time.NewTicker(time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-stop:
				return
			case <-tick.C:
				due := int(gets * time.Since(t0).Seconds())
				for ; sent < due; sent++ {
					select {
					case tokens <- struct{}{}:
					default: // workers behind: the achieved rate is what the logger counts
					}
				}
			}
		}
	}()
}

type wbResult struct {
	cpuPerReq, extraCPUPerReq, extraCgoPerReq float64 // µs, µs, calls
	asksPerReq                                float64
	wall                                      time.Duration
	linesPerSec                               float64
	ok                                        int
}

func wbRun(b *testing.B, n, rate int) wbResult {
	logs := &wbLogger{}
	HandlerRegisterer.RegisterLogger(logs)
	defer HandlerRegisterer.RegisterLogger(noopLogger{})

	key := newEdKey("k")
	base, _ := realmsProvider(b, key, func(string) time.Duration { return time.Second })
	var origins []interface{}
	for i := 0; i < wbOrigins; i++ {
		origins = append(origins, wbOrigin(b, fmt.Sprintf("o%d", i)))
	}
	ctx, cancel := context.WithCancel(context.Background())
	port := freePort(b)
	defer func() { cancel(); waitFree(b, port) }()
	extra := map[string]interface{}{
		"name": []interface{}{"jwk-aggregator-auth", "jwk-aggregator"},
		"jwk-aggregator": map[string]interface{}{
			"port": float64(port), "origins": origins, "cache": false, "min_refresh_interval": "0",
			"issuer_patterns": []interface{}{base + "/realms/*"}, "discovery_wait": "10s",
		},
		"jwk-aggregator-auth": map[string]interface{}{"rules": []interface{}{map[string]interface{}{"paths": []interface{}{"/p"}}}},
	}
	next := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "backend") })
	h, err := factories(b)["jwk-aggregator-auth"](ctx, extra, next)
	if err != nil {
		b.Fatal(err)
	}
	ah, ok := h.(*authHandler)
	if !ok {
		b.Fatalf("auth handler failed closed (%T): see the configuration", h)
	}
	agg := ah.agg
	tok := key.sign(map[string]interface{}{"iss": base + "/realms/acme", "exp": time.Now().Add(time.Hour).Unix()})
	hdr := func() http.Header { return http.Header{"Authorization": {"Bearer " + tok}} }

	// The origins' first fetches, so the producer's lines are steady from the start.
	first := httptest.NewRecorder()
	agg.ServeHTTP(first, httptest.NewRequest("GET", "/", nil))
	if first.Code != 200 {
		b.Fatalf("GET / = %d: %s", first.Code, first.Body.String())
	}

	stop := make(chan struct{})
	var producers sync.WaitGroup
	wbProduce(agg, rate, stop, &producers)
	defer func() { close(stop); producers.Wait() }()
	time.Sleep(200 * time.Millisecond)

	// Baseline: the producer alone.
	cpu0, cgo0, t0, lines0 := wbCPU(), runtime.NumCgoCall(), time.Now(), logs.fetched.Load()
	time.Sleep(time.Second)
	cpu1, cgo1, t1, lines1 := wbCPU(), runtime.NumCgoCall(), time.Now(), logs.fetched.Load()
	baseCPUPerSec := float64(cpu1-cpu0) / t1.Sub(t0).Seconds()
	baseCgoPerSec := float64(cgo1-cgo0) / t1.Sub(t0).Seconds()

	// The wait: n requests for a tenant whose discovery takes 1 s.
	asks0 := ah.asks.Load()
	codes := make([]int, n)
	var wg sync.WaitGroup
	start := time.Now()
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			codes[i] = do(h, "/p", hdr()).Code
		}(i)
	}
	wg.Wait()
	end := time.Now()
	cpu2, cgo2, lines2 := wbCPU(), runtime.NumCgoCall(), logs.fetched.Load()
	asks1 := ah.asks.Load()

	// Baseline again, after the wait (the producer alone), averaged with the first.
	time.Sleep(time.Second)
	cpu3, cgo3, t3 := wbCPU(), runtime.NumCgoCall(), time.Now()
	baseCPUPerSec = (baseCPUPerSec + float64(cpu3-cpu2)/t3.Sub(end).Seconds()) / 2
	baseCgoPerSec = (baseCgoPerSec + float64(cgo3-cgo2)/t3.Sub(end).Seconds()) / 2

	wall := end.Sub(start)
	r := wbResult{wall: wall, asksPerReq: float64(asks1-asks0) / float64(n)}
	r.cpuPerReq = float64(cpu2-cpu1) / float64(time.Microsecond) / float64(n)
	r.extraCPUPerReq = (float64(cpu2-cpu1) - baseCPUPerSec*wall.Seconds()) / float64(time.Microsecond) / float64(n)
	r.extraCgoPerReq = (float64(cgo2-cgo1) - baseCgoPerSec*wall.Seconds()) / float64(n)
	r.linesPerSec = float64((lines1-lines0)+(lines2-lines1)) / end.Sub(t0).Seconds()
	for _, c := range codes {
		if c == 200 {
			r.ok++
		}
	}
	return r
}

func BenchmarkWaitingWhileLogging(b *testing.B) {
	for _, n := range []int{50, 200} {
		for _, rate := range []int{0, 1000, 10000} {
			b.Run(fmt.Sprintf("waiting=%d/lines=%d", n, rate), func(b *testing.B) {
				var sum wbResult
				for i := 0; i < b.N; i++ {
					r := wbRun(b, n, rate)
					if r.ok != n {
						b.Errorf("%d of %d waiting requests answered 200", r.ok, n)
					}
					sum.cpuPerReq += r.cpuPerReq
					sum.extraCPUPerReq += r.extraCPUPerReq
					sum.extraCgoPerReq += r.extraCgoPerReq
					sum.asksPerReq += r.asksPerReq
					sum.wall += r.wall
					sum.linesPerSec += r.linesPerSec
					sum.ok += r.ok
				}
				k := float64(b.N)
				b.ReportMetric(sum.cpuPerReq/k, "cpu-us/req")
				b.ReportMetric(sum.extraCPUPerReq/k, "xcpu-us/req")
				b.ReportMetric(sum.extraCgoPerReq/k, "xcgo/req")
				b.ReportMetric(sum.asksPerReq/k, "asks/req")
				b.ReportMetric(float64(sum.wall.Milliseconds())/k, "wall-ms")
				b.ReportMetric(sum.linesPerSec/k, "lines/s")
				b.ReportMetric(float64(sum.ok)/k/float64(n), "ok-frac")
			})
		}
	}
}
