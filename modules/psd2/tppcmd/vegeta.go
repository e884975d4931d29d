package tppcmd

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"runtime"
	"sync"
)

// vegetaTarget is vegeta's JSON target format.
type vegetaTarget struct {
	Method string      `json:"method"`
	URL    string      `json:"url"`
	Header http.Header `json:"header"`
	Body   []byte      `json:"body,omitempty"`
}

// vegetaTargets signs n requests, each with a fresh X-Request-ID, on all
// cores: RSA signing costs far more than verifying, so load tests sign
// ahead of time.
func (f *requestFlags) vegetaTargets(w io.Writer, rawURL string, n int) error {
	if f.requestID != "" {
		return fmt.Errorf("--request-id cannot be combined with --vegeta: every target needs its own")
	}
	first, err := f.sign(rawURL)
	if err != nil {
		return err
	}
	targets := make([]vegetaTarget, n)
	jobs := make(chan int)
	errs := make(chan error, runtime.NumCPU())
	var wg sync.WaitGroup
	for range runtime.NumCPU() {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range jobs {
				t, err := first.again(rawURL)
				if err != nil {
					errs <- err
					return
				}
				targets[i] = t
			}
		}()
	}
	for i := range n {
		jobs <- i
	}
	close(jobs)
	wg.Wait()
	close(errs)
	if err := <-errs; err != nil {
		return err
	}
	bw := bufio.NewWriter(w)
	enc := json.NewEncoder(bw)
	for _, t := range targets {
		if err := enc.Encode(t); err != nil {
			return err
		}
	}
	return bw.Flush()
}

// again signs the same request with a new request id.
func (s *signed) again(rawURL string) (vegetaTarget, error) {
	h := http.Header{}
	for k, v := range s.header {
		switch http.CanonicalHeaderKey(k) {
		case "X-Request-Id", "Digest", "Signature", "Tpp-Signature-Certificate":
		default:
			h[k] = v
		}
	}
	signer := s.signer
	body, err := signer.Sign(s.method, s.url.RequestURI(), h, s.rawBody)
	if err != nil {
		return vegetaTarget{}, err
	}
	return vegetaTarget{Method: s.method, URL: rawURL, Header: h, Body: body}, nil
}
