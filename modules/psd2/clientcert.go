package psd2

import (
	"bytes"
	"crypto/x509"
	"net/http"
	"strings"
	"time"

	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"go.uber.org/zap"

	"github.com/bankedge/bankedge/modules/psd2/certheader"
)

// Canonical keys of the RFC 9440 headers.
const (
	keyClientCert      = "Client-Cert"
	keyClientCertChain = "Client-Cert-Chain"
)

// noCertificate is the refusal of a request that brought no QWAC, however
// it was to come.
const noCertificate = "no TLS client certificate: the QWAC must be presented in the TLS handshake"

// untrustedLogEvery spaces the warnings about Client-Cert headers from
// peers outside trusted_proxies.
const untrustedLogEvery = time.Minute

// headerCertificate reads the QWAC that a TLS-terminating load balancer put
// in Client-Cert (RFC 9440), with the intermediates of Client-Cert-Chain.
// Only a peer in the server's trusted_proxies may set it (Caddy marks its
// requests with the trusted_proxy variable): from any other peer the
// header is ignored, and the request has no certificate. A certificate seen
// before in the same header text is found without decoding; otherwise vc is
// nil and the caller verifies peer.
func (h *QWAC) headerCertificate(r *http.Request) (vc *verifiedCert, peer *x509.Certificate, intermediates []*x509.Certificate, sum [32]byte, rej *rejection) {
	values := r.Header[keyClientCert]
	trusted, _ := caddyhttp.GetVar(r.Context(), caddyhttp.TrustedProxyVarKey).(bool)
	if !trusted {
		if len(values) > 0 || len(r.Header[keyClientCertChain]) > 0 {
			h.logUntrustedHeader(r)
		}
		return nil, nil, nil, sum, reject(CertificateMissing, noCertificate)
	}
	switch {
	case len(values) == 0 || values[0] == "":
		return nil, nil, nil, sum, reject(CertificateMissing, noCertificate)
	case len(values) > 1:
		return nil, nil, nil, sum, rejectPath(FormatError, keyClientCert, "Client-Cert is sent more than once")
	}
	value := values[0]
	now := h.verifier.now()
	if vc := h.verifier.lookupHeader(value, now); vc != nil {
		return vc, vc.cert, nil, vc.sum, nil
	}
	buf := derPool.Get().(*[]byte)
	der, err := certheader.AppendClientCert((*buf)[:0], value)
	defer func() {
		*buf = der[:0]
		derPool.Put(buf)
	}()
	if err != nil {
		return nil, nil, nil, sum, rejectPath(CertificateInvalid, keyClientCert, "Client-Cert cannot be decoded: "+err.Error())
	}
	sum = sha256Sum(der)
	if vc := h.verifier.lookup(sum, now); vc != nil {
		h.verifier.storeHeader(value, vc)
		return vc, vc.cert, nil, sum, nil
	}
	peer, err = x509.ParseCertificate(bytes.Clone(der))
	if err != nil {
		return nil, nil, nil, sum, rejectPath(CertificateInvalid, keyClientCert, "Client-Cert is not a valid certificate")
	}
	chain, err := certheader.ClientCertChain(strings.Join(r.Header[keyClientCertChain], ", "))
	if err != nil {
		return nil, nil, nil, sum, rejectPath(CertificateInvalid, keyClientCertChain, "Client-Cert-Chain cannot be decoded: "+err.Error())
	}
	for _, c := range chain {
		ic, err := x509.ParseCertificate(c)
		if err != nil {
			return nil, nil, nil, sum, rejectPath(CertificateInvalid, keyClientCertChain, "Client-Cert-Chain holds an invalid certificate")
		}
		intermediates = append(intermediates, ic)
	}
	return nil, peer, intermediates, sum, nil
}

// logUntrustedHeader warns, at most once per untrustedLogEvery, that a
// peer outside trusted_proxies sent Client-Cert: a client trying to pose as
// the load balancer, or a load balancer missing from trusted_proxies.
func (h *QWAC) logUntrustedHeader(r *http.Request) {
	now := time.Now().UnixNano()
	last := h.untrustedLoggedAt.Load()
	if now-last < int64(untrustedLogEvery) || !h.untrustedLoggedAt.CompareAndSwap(last, now) {
		return
	}
	h.logger.Warn("Client-Cert header from a peer outside the server's trusted_proxies ignored; the request has no client certificate",
		zap.String("remote_ip", r.RemoteAddr))
}
