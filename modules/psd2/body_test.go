package psd2

import "testing"

// TestBodyBufferReusable pins when a request's body buffer may go back to
// the pool: never while whoever it was handed to may still read it.
func TestBodyBufferReusable(t *testing.T) {
	var b bodyBuffer
	if !b.reusable() {
		t.Error("a buffer never handed on is not reusable")
	}
	b.handedOn = true
	if b.reusable() {
		t.Error("a handed-on buffer that nobody closed is reusable: the transport may still be reading it")
	}
	_ = b.Close()
	if !b.reusable() {
		t.Error("a closed buffer is not reusable")
	}
	b.buf.Grow(4*defaultMaxBody + 1)
	if b.reusable() {
		t.Error("a buffer larger than 4 × max_body_size is kept")
	}
}
