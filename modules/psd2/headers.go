package psd2

import "net/http"

// header returns the first value of a header by its canonical key, which
// skips the canonicalisation (and its allocation) of Header.Get.
func header(r *http.Request, canonicalKey string) string {
	if v := r.Header[canonicalKey]; len(v) > 0 {
		return v[0]
	}
	return ""
}

// singleHeaders are the headers that make the TPP's identity and the
// request's signature: the handlers verify one copy, so a second one could
// reach the ASPSP unverified. Canonical keys and the names as errors spell
// them.
var singleHeaders = [...]struct{ key, name string }{
	{"X-Client-Certificate", headerClientCertificate},
	{"Tpp-Signature-Certificate", headerSignatureCert},
	{"Signature", headerSignature},
	{"Digest", headerDigest},
	{"X-Request-Id", headerRequestID},
}

// checkSingleHeaders refuses a request that carries an identity or
// signature header more than once.
func checkSingleHeaders(r *http.Request) *rejection {
	for _, h := range singleHeaders {
		if len(r.Header[h.key]) > 1 {
			return rejectPath(FormatError, h.name, h.name+" is sent more than once")
		}
	}
	return nil
}

// routingHeaders are request headers with which some frameworks and
// proxies let the client override the method, the path or its own address
// (Symfony and IIS honour X-Original-URL and X-Rewrite-URL, many stacks
// X-HTTP-Method-Override). Only the gateway may set them; reverse_proxy
// adds the true X-Forwarded-* itself. Lower case, compared with '_' taken
// as '-', since CGI-style servers read X_Real_IP as X-Real-IP.
var routingHeaders = [...]string{
	"x-original-url", "x-rewrite-url",
	"x-http-method-override", "x-http-method", "x-method-override",
	"forwarded", "x-real-ip",
}

const forwardedPrefix = "x-forwarded-"

// stripRoutingHeaders removes the client's routing headers and every
// X-Forwarded-* header, whatever their spelling.
func stripRoutingHeaders(h http.Header) {
	for k := range h {
		if isRoutingHeader(k) {
			delete(h, k)
		}
	}
}

func isRoutingHeader(k string) bool {
	if k == "" || k[0]|0x20 != 'x' && k[0]|0x20 != 'f' {
		return false
	}
	if len(k) >= len(forwardedPrefix) && headerNameEqual(k[:len(forwardedPrefix)], forwardedPrefix) {
		return true
	}
	for _, name := range routingHeaders {
		if headerNameEqual(k, name) {
			return true
		}
	}
	return false
}

// headerNameEqual compares a header name with a lower-case name, ignoring
// case and taking '_' as '-'.
func headerNameEqual(k, lower string) bool {
	if len(k) != len(lower) {
		return false
	}
	for i := 0; i < len(k); i++ {
		c := k[i]
		if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		} else if c == '_' {
			c = '-'
		}
		if c != lower[i] {
			return false
		}
	}
	return true
}
