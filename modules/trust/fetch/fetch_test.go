package fetch_test

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/bankedge/bankedge/modules/trust/fetch"
)

func TestFetchBounds(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/small":
			_, _ = w.Write([]byte("hello"))
		case "/big-chunked":
			w.(http.Flusher).Flush() // no Content-Length
			_, _ = w.Write([]byte(strings.Repeat("x", 2048)))
		case "/big":
			w.Header().Set("Content-Length", "2048")
			_, _ = w.Write([]byte(strings.Repeat("x", 2048)))
		case "/slow":
			<-r.Context().Done()
		case "/to-file":
			http.Redirect(w, r, "file:///etc/passwd", http.StatusFound)
		default:
			http.NotFound(w, r)
		}
	}))
	defer srv.Close()
	c := &fetch.Client{HTTP: fetch.NewHTTPClient(300 * time.Millisecond), MaxBytes: 1024}
	ctx := context.Background()
	if b, err := c.Fetch(ctx, srv.URL+"/small"); err != nil || string(b) != "hello" {
		t.Fatalf("%q %v", b, err)
	}
	for _, p := range []string{"/big", "/big-chunked"} {
		if _, err := c.Fetch(ctx, srv.URL+p); !errors.Is(err, fetch.ErrTooLarge) {
			t.Fatalf("%s: %v", p, err)
		}
	}
	start := time.Now()
	if _, err := c.Fetch(ctx, srv.URL+"/slow"); err == nil || time.Since(start) > 3*time.Second {
		t.Fatalf("slow: %v after %s", err, time.Since(start))
	}
	if _, err := c.Fetch(ctx, srv.URL+"/missing"); err == nil || !strings.Contains(err.Error(), "404") {
		t.Fatalf("missing: %v", err)
	}
	if _, err := c.Fetch(ctx, srv.URL+"/to-file"); err == nil {
		t.Fatal("followed a redirect to a file")
	}
}

func TestFetchFiles(t *testing.T) {
	p := filepath.Join(t.TempDir(), "lotl.xml")
	if err := os.WriteFile(p, []byte("<x/>"), 0o600); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	off := &fetch.Client{MaxBytes: 1024}
	if _, err := off.Fetch(ctx, "file://"+p); err == nil {
		t.Fatal("read a file without AllowFiles")
	}
	if _, err := off.Fetch(ctx, p); err == nil {
		t.Fatal("read a path without AllowFiles")
	}
	on := &fetch.Client{MaxBytes: 1024, AllowFiles: true}
	for _, u := range []string{"file://" + p, p} {
		if b, err := on.Fetch(ctx, u); err != nil || string(b) != "<x/>" {
			t.Fatalf("%s: %q %v", u, b, err)
		}
	}
	small := &fetch.Client{MaxBytes: 2, AllowFiles: true}
	if _, err := small.Fetch(ctx, p); !errors.Is(err, fetch.ErrTooLarge) {
		t.Fatalf("big file: %v", err)
	}
}
