package psd2_test

import (
	"bufio"
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"
)

// TestSlowClients: with the server timeouts the example sets (shortened
// here), a TPP with a valid certificate cannot hold a connection by sending
// its body a byte at a time, nor anyone by stalling in the TLS handshake
// (issue "Hostile traffic", point 6).
func TestSlowClients(t *testing.T) {
	f := newFixtureWith(t, fixtureOptions{globals: `
	servers {
		timeouts {
			read_header 500ms
			read_body 3s
			read_body_idle 300ms 200
		}
	}`})
	u, _ := url.Parse(f.piraeusURL)

	t.Run("a body at 10 bytes a second is cut", func(t *testing.T) {
		h, body := signed(t, f.qwac, f.qseal, http.MethodPost, paymentPath, paymentBody)
		conn, err := tls.Dial("tcp", u.Host, f.tlsConfig(f.qwac))
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		var head strings.Builder
		fmt.Fprintf(&head, "POST %s HTTP/1.1\r\nHost: %s\r\nContent-Length: %d\r\n", paymentPath, u.Host, len(body))
		for k, vs := range h {
			fmt.Fprintf(&head, "%s: %s\r\n", k, vs[0])
		}
		head.WriteString("\r\n")
		if _, err := conn.Write([]byte(head.String())); err != nil {
			t.Fatal(err)
		}
		answered := make(chan string, 1)
		go func() {
			resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
			if err != nil {
				answered <- "connection ended: " + err.Error()
				return
			}
			b, _ := io.ReadAll(resp.Body)
			answered <- fmt.Sprintf("%d %s", resp.StatusCode, b)
		}()
		start := time.Now()
		for i := 0; i < len(body); i++ {
			select {
			case got := <-answered:
				if strings.HasPrefix(got, "200") {
					t.Fatalf("the trickled request was served: %s", got)
				}
				if time.Since(start) > 3*time.Second {
					t.Fatalf("cut only after %s: %s", time.Since(start), got)
				}
				t.Logf("after %s: %s", time.Since(start).Round(time.Millisecond), got)
				if strings.HasPrefix(got, "408") && !strings.Contains(got, `"code":"FORMAT_ERROR"`) {
					t.Errorf("408 without a Berlin Group body: %s", got)
				}
				return
			case <-time.After(100 * time.Millisecond):
			}
			if _, err := conn.Write(body[i : i+1]); err != nil {
				return // the server closed the connection
			}
		}
		t.Fatalf("the whole body trickled in over %s without being cut", time.Since(start))
	})

	t.Run("a stalled TLS handshake is closed", func(t *testing.T) {
		conn, err := net.Dial("tcp", u.Host)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		// The first bytes of a ClientHello, then nothing.
		if _, err := conn.Write([]byte{0x16, 0x03, 0x01, 0x02, 0x00}); err != nil {
			t.Fatal(err)
		}
		start := time.Now()
		_ = conn.SetReadDeadline(time.Now().Add(5 * time.Second))
		_, err = io.ReadAll(conn)
		if ne, ok := err.(net.Error); ok && ne.Timeout() {
			t.Fatalf("the server kept a stalled handshake open for %s", time.Since(start))
		}
		if d := time.Since(start); d > 2*time.Second {
			t.Errorf("stalled handshake closed after %s, want about read_header (500ms)", d)
		}
	})
}
