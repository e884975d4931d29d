package psd2

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"sync"
	"sync/atomic"
)

// bodyBuffer holds a request body read for the digest and the reader that
// hands it on, pooled together so that a request allocates neither, and
// psd2_qseal's other scratch space of the request.
type bodyBuffer struct {
	// signedHeaders holds the names of the Signature's signed headers:
	// room for any profile's, so that parsing them does not allocate.
	signedHeaders [8]string

	buf    bytes.Buffer
	reader bytes.Reader
	limit  io.LimitedReader
	// handedOn is set when the buffer becomes r.Body, and closed when its
	// consumer closes it. http.Transport may go on reading a request body
	// after RoundTrip returns (an upstream that answers before reading it
	// all) and closes it when done, so a handed-on buffer is reused only
	// once closed; otherwise the next request could overwrite bytes still
	// being sent upstream.
	handedOn bool
	closed   atomic.Bool
}

func (b *bodyBuffer) Read(p []byte) (int, error) { return b.reader.Read(p) }
func (b *bodyBuffer) Close() error               { b.closed.Store(true); return nil }

// reusable reports whether nothing can still read the buffer.
func (b *bodyBuffer) reusable() bool {
	return (!b.handedOn || b.closed.Load()) && b.buf.Cap() <= 4*defaultMaxBody
}

// bodyReleased, when set by tests, learns whether each request's buffer
// went back to the pool.
var bodyReleased atomic.Pointer[func(reused bool)]

var bodyPool = sync.Pool{New: func() any { return new(bodyBuffer) }}

// getBody takes a buffer from the pool for one request.
func getBody() *bodyBuffer {
	body := bodyPool.Get().(*bodyBuffer)
	// The names of the last request are substrings of its headers.
	clear(body.signedHeaders[:])
	body.buf.Reset()
	body.handedOn = false
	body.closed.Store(false)
	return body
}

// release puts the buffer back unless something may still read it. Very
// large buffers are not kept either, so that one big body does not pin
// memory for the life of the process.
func (b *bodyBuffer) release() {
	reused := b.reusable()
	if reused {
		bodyPool.Put(b)
	}
	if hook := bodyReleased.Load(); hook != nil {
		(*hook)(reused)
	}
}

// readBody reads the body into b, up to limit bytes, and makes b the
// request's body so that the next handler gets the same bytes.
func (b *bodyBuffer) readBody(r *http.Request, limit int64) *rejection {
	if r.ContentLength > limit {
		return tooLarge(limit)
	}
	if r.Body == nil || r.Body == http.NoBody {
		return nil
	}
	if r.ContentLength > 0 {
		// ReadFrom keeps bytes.MinRead free before every read, the one
		// that sees the end included: with this, a fresh buffer grows
		// once, and a pooled one large enough not at all.
		b.buf.Grow(int(r.ContentLength) + bytes.MinRead)
	}
	b.limit = io.LimitedReader{R: r.Body, N: limit + 1}
	n, err := b.buf.ReadFrom(&b.limit)
	b.limit.R = nil
	if errors.Is(err, os.ErrDeadlineExceeded) {
		// The server's read_body_idle or read_body timeout cut a body
		// that came too slowly.
		return &rejection{Status: http.StatusRequestTimeout, Code: FormatError, Path: "body",
			Text: "the request body arrived too slowly"}
	}
	if err != nil {
		return rejectPath(FormatError, "body", "request body could not be read")
	}
	if n > limit {
		return tooLarge(limit)
	}
	_ = r.Body.Close()
	b.reader.Reset(b.buf.Bytes())
	r.Body = b
	b.handedOn = true
	r.ContentLength = n
	return nil
}

func tooLarge(limit int64) *rejection {
	return &rejection{
		Status: http.StatusRequestEntityTooLarge,
		Code:   FormatError,
		Path:   "body",
		Text:   fmt.Sprintf("request body is larger than %d bytes", limit),
	}
}
