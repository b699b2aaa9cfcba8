// goclient: the e2e driver for a Go program as Go CLIs are released:
// CGO_ENABLED=0, statically linked, its own system calls, resolver and TLS
// (net/http, crypto/tls). No preload reaches it; kimifix carries it as its
// HTTP proxy (docs/relay.md, "Proxy carrier"). Like any net/http program it
// honours HTTPS_PROXY/HTTP_PROXY/NO_PROXY (http.ProxyFromEnvironment) and
// SSL_CERT_FILE (crypto/x509 on Linux).
//
// Interface (tests/e2e/README.md, "Driver interface"): E2E_URL, E2E_METHOD,
// E2E_HEADERS, E2E_BODY_FILE, E2E_REPEAT; prints "status: N" per response,
// facts, "body:" and the last body. E2E_PRINT_ENV=NAME,NAME... adds a fact
// "env NAME: VALUE" (or "env NAME: (unset)") for each: what the program saw.
package main

import (
	"bytes"
	"fmt"
	"io"
	"net/http"
	"os"
	"strconv"
	"strings"
	"time"
)

func headers() [][2]string {
	var out [][2]string
	for _, line := range strings.Split(os.Getenv("E2E_HEADERS"), "\n") {
		if strings.TrimSpace(line) == "" {
			continue
		}
		k, v, _ := strings.Cut(line, ":")
		out = append(out, [2]string{strings.TrimSpace(k), strings.TrimSpace(v)})
	}
	return out
}

func main() {
	t0 := time.Now()
	w := os.Stdout
	for _, name := range strings.Split(os.Getenv("E2E_PRINT_ENV"), ",") {
		if name == "" {
			continue
		}
		if v, ok := os.LookupEnv(name); ok {
			fmt.Fprintf(w, "env %s: %s\n", name, v)
		} else {
			fmt.Fprintf(w, "env %s: (unset)\n", name)
		}
	}
	url := os.Getenv("E2E_URL")
	if url == "" {
		return
	}
	var body []byte
	if p := os.Getenv("E2E_BODY_FILE"); p != "" {
		b, err := os.ReadFile(p)
		if err != nil {
			fmt.Fprintln(os.Stderr, "goclient:", err)
			os.Exit(2)
		}
		body = b
	}
	method := os.Getenv("E2E_METHOD")
	if method == "" {
		method = "GET"
		if body != nil {
			method = "POST"
		}
	}
	repeat, _ := strconv.Atoi(os.Getenv("E2E_REPEAT"))
	if repeat < 1 {
		repeat = 1
	}
	client := &http.Client{Timeout: 45 * time.Second}
	var last []byte
	firstMs := int64(-1)
	code := 0
	for i := 0; i < repeat; i++ {
		var rd io.Reader
		if body != nil {
			rd = bytes.NewReader(body)
		}
		req, err := http.NewRequest(method, url, rd)
		if err != nil {
			fmt.Fprintln(os.Stderr, "goclient:", err)
			os.Exit(2)
		}
		for _, h := range headers() {
			req.Header.Add(h[0], h[1])
		}
		resp, err := client.Do(req)
		if err != nil {
			fmt.Fprintln(os.Stderr, "goclient:", err)
			code = 1
			break
		}
		fmt.Fprintf(w, "status: %d\n", resp.StatusCode)
		buf := make([]byte, 65536)
		last = last[:0]
		for {
			n, err := resp.Body.Read(buf)
			if n > 0 {
				if firstMs < 0 {
					firstMs = time.Since(t0).Milliseconds()
				}
				last = append(last, buf[:n]...)
			}
			if err != nil {
				break
			}
		}
		resp.Body.Close()
	}
	if firstMs >= 0 {
		fmt.Fprintf(w, "first-byte-ms: %d\n", firstMs)
	}
	fmt.Fprintf(w, "total-ms: %d\n", time.Since(t0).Milliseconds())
	fmt.Fprintf(w, "exit: %d\nbody:\n", code)
	w.Write(last)
	os.Exit(code)
}
