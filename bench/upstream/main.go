// Command upstream is the benchmark's ASPSP: it drains the request body and
// answers {"status":"ok"}, doing as little as possible so that the proxy's
// cost dominates.
package main

import (
	"flag"
	"io"
	"log"
	"net/http"
)

func main() {
	addr := flag.String("listen", "127.0.0.1:29000", "address to listen on")
	flag.Parse()
	body := []byte(`{"status":"ok"}`)
	log.Fatal(http.ListenAndServe(*addr, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write(body)
	})))
}
