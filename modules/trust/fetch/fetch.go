// Package fetch gets trusted lists, OCSP responses and CRLs over HTTP with
// bounded time and size, and trusted lists from files. It has no Caddy
// imports.
package fetch

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"strings"
	"time"
)

// Client fetches documents.
type Client struct {
	// HTTP is the client; nil means one from NewHTTPClient(30s).
	HTTP *http.Client
	// MaxBytes bounds a document; a larger one is an error, never cut.
	MaxBytes int64
	// AllowFiles lets file:// URLs and plain paths through. Only for
	// addresses from configuration: URLs taken from certificates must never
	// read local files.
	AllowFiles bool
	// UserAgent is sent with HTTP requests.
	UserAgent string
}

// ErrTooLarge is returned for a document over MaxBytes.
var ErrTooLarge = errors.New("document too large")

// NewHTTPClient returns a client whose whole exchange, from dialling to the
// last body byte, is bounded by timeout, with at most three redirects.
func NewHTTPClient(timeout time.Duration) *http.Client {
	dialer := &net.Dialer{Timeout: timeout, KeepAlive: 30 * time.Second}
	return &http.Client{
		Timeout: timeout,
		Transport: &http.Transport{
			Proxy:                 http.ProxyFromEnvironment,
			DialContext:           dialer.DialContext,
			TLSHandshakeTimeout:   timeout,
			ResponseHeaderTimeout: timeout,
			MaxIdleConnsPerHost:   4,
			IdleConnTimeout:       90 * time.Second,
			ForceAttemptHTTP2:     true,
		},
		CheckRedirect: func(req *http.Request, via []*http.Request) error {
			if len(via) >= 3 {
				return errors.New("more than 3 redirects")
			}
			if req.URL.Scheme != "http" && req.URL.Scheme != "https" {
				return fmt.Errorf("redirect to a %s URL", req.URL.Scheme)
			}
			return nil
		},
	}
}

// Fetch gets the document at rawURL (GET).
func (c *Client) Fetch(ctx context.Context, rawURL string) ([]byte, error) {
	if c.AllowFiles {
		if path, ok := filePath(rawURL); ok {
			return c.readFile(path)
		}
	}
	u, err := url.Parse(rawURL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("%q is not an http or https URL", rawURL)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, rawURL, nil)
	if err != nil {
		return nil, err
	}
	return c.do(req)
}

// Post sends body to rawURL (http or https) and returns the answer.
func (c *Client) Post(ctx context.Context, rawURL, contentType string, body []byte) ([]byte, error) {
	u, err := url.Parse(rawURL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("%q is not an http or https URL", rawURL)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, rawURL, bytes.NewReader(body))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Content-Type", contentType)
	return c.do(req)
}

func (c *Client) do(req *http.Request) ([]byte, error) {
	if c.UserAgent != "" {
		req.Header.Set("User-Agent", c.UserAgent)
	}
	hc := c.HTTP
	if hc == nil {
		hc = defaultHTTP
	}
	resp, err := hc.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		// Drain a little so the connection can be reused.
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 4<<10))
		return nil, fmt.Errorf("%s: HTTP status %d", req.URL.Redacted(), resp.StatusCode)
	}
	if c.MaxBytes > 0 && resp.ContentLength > c.MaxBytes {
		return nil, fmt.Errorf("%s: %w: %d bytes announced, limit %d", req.URL.Redacted(), ErrTooLarge, resp.ContentLength, c.MaxBytes)
	}
	return c.readLimited(resp.Body, req.URL.Redacted())
}

var defaultHTTP = NewHTTPClient(30 * time.Second)

func (c *Client) readLimited(r io.Reader, name string) ([]byte, error) {
	if c.MaxBytes <= 0 {
		return io.ReadAll(r)
	}
	data, err := io.ReadAll(io.LimitReader(r, c.MaxBytes+1))
	if err != nil {
		return nil, fmt.Errorf("%s: reading: %w", name, err)
	}
	if int64(len(data)) > c.MaxBytes {
		return nil, fmt.Errorf("%s: %w: over %d bytes", name, ErrTooLarge, c.MaxBytes)
	}
	return data, nil
}

func (c *Client) readFile(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return c.readLimited(f, path)
}

// filePath returns the local path of a file:// URL or a plain path.
func filePath(rawURL string) (string, bool) {
	if strings.HasPrefix(rawURL, "file://") {
		u, err := url.Parse(rawURL)
		if err != nil || (u.Host != "" && u.Host != "localhost") {
			return "", false
		}
		return u.Path, u.Path != ""
	}
	if strings.Contains(rawURL, "://") {
		return "", false
	}
	return rawURL, rawURL != ""
}
