// Command soak runs 1,000,000 token verifications and 100,000 aggregator requests in one process
// through the C API, and reports resident memory and thread count at the start and the end.
// It fails when either grows past what a steady state allows.
//
//	soak -verifications 1000000 -requests 100000
package main

import (
	"bufio"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jwk-aggregator/jwk-aggregator/tests/idp"
	"github.com/jwk-aggregator/jwk-aggregator/tests/internal/core"
)

func status() (rssKB, threads int) {
	f, err := os.Open("/proc/self/status")
	if err != nil {
		return 0, 0
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := sc.Text()
		if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			fmt.Sscanf(strings.TrimSpace(v), "%d", &rssKB)
		}
		if v, ok := strings.CutPrefix(line, "Threads:"); ok {
			fmt.Sscanf(strings.TrimSpace(v), "%d", &threads)
		}
	}
	return
}

func main() {
	verifications := flag.Int("verifications", 1_000_000, "token checks")
	requests := flag.Int("requests", 100_000, "aggregator requests")
	workers := flag.Int("workers", 4, "goroutines")
	flag.Parse()

	var origins []string
	var tokens []string
	for _, alg := range []string{"RS256", "ES256", "EdDSA"} {
		p, err := idp.Start("soak-"+alg, 0, alg)
		if err != nil {
			panic(err)
		}
		origins = append(origins, p.JWKSURL())
		for i := 0; i < 200; i++ {
			tokens = append(tokens, p.Token(0, fmt.Sprintf("user-%d", i), "api", 24*time.Hour))
		}
	}
	// Every tenth check is refused: a forged signature, a random kid, or garbage.
	bad := []string{tokens[0] + "x", "eyJhbGciOiJFZERTQSIsImtpZCI6InJhbmRvbSJ9.e30.AAAA", "not-a-token"}
	settings, _ := json.Marshal(map[string]interface{}{"port": 1, "origins": origins, "cache": true})
	// cache_size 300 over 600 distinct tokens: cache hits, evictions and real verifications all run.
	c, err := core.New(string(settings), `{"rules": [{"paths": ["/api/*"], "audience": ["api"]}], "cache_size": 300}`)
	if err != nil {
		panic(err)
	}

	run := func(n int, f func(i int)) {
		var next atomic.Int64
		var wg sync.WaitGroup
		for w := 0; w < *workers; w++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := int(next.Add(1)); i <= n; i = int(next.Add(1)) {
					f(i)
				}
			}()
		}
		wg.Wait()
	}
	var wrong atomic.Int64
	verify := func(i int) {
		if i%10 == 0 {
			if c.Check("/api/x", "Bearer "+bad[i%len(bad)]) != core.Invalid {
				wrong.Add(1)
			}
		} else if c.Check("/api/x", "Bearer "+tokens[i%len(tokens)]) != core.Allow {
			wrong.Add(1)
		}
	}
	paths := []string{"/", "/", "/", "/__health", "/metrics"}
	serve := func(i int) {
		if c.Serve(paths[i%len(paths)]) != 200 {
			wrong.Add(1)
		}
	}

	// Warm up, so that caches, pools and the Go heap reach their working size before measuring.
	run(20_000, verify)
	run(2_000, serve)
	c.DrainLogs()
	runtime.GC()
	rss0, thr0 := status()
	t0 := time.Now()
	fmt.Printf("| after | verifications | aggregator requests | RSS (MiB) | threads |\n| --- | --- | --- | --- | --- |\n")
	fmt.Printf("| start (after warm-up) | 0 | 0 | %.1f | %d |\n", float64(rss0)/1024, thr0)
	step := *verifications / 4
	for done := 0; done < *verifications; done += step {
		run(step, verify)
		run(*requests/4, serve)
		c.DrainLogs()
		runtime.GC()
		rss, thr := status()
		fmt.Printf("| %s | %d | %d | %.1f | %d |\n", time.Since(t0).Round(time.Second), done+step, (done+step)/step*(*requests/4), float64(rss)/1024, thr)
	}
	rss1, thr1 := status()
	fmt.Printf("\nwrong answers: %d; RSS %+.1f MiB, threads %+d over %s\n", wrong.Load(), float64(rss1-rss0)/1024, thr1-thr0, time.Since(t0).Round(time.Second))
	c.Free()
	// Flat means: no growth beyond allocator noise (10 MiB or 20 %), no new threads beyond a few
	// short-lived ones (the unknown-kid refetch thread, Go's own).
	if wrong.Load() != 0 || float64(rss1) > float64(rss0)*1.2+10*1024 || thr1 > thr0+4 {
		fmt.Println("SOAK FAILED")
		os.Exit(1)
	}
	fmt.Println("soak ok")
}
