// Package tppclient is the TPP side of the PSD2 gateway: it signs requests
// with a QSEAL as a bank's profile demands and sends them over mTLS with a
// QWAC. The bankedge tpp commands, the tests and the benchmark target
// generator all sign through it.
package tppclient

import (
	"bytes"
	"crypto"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"errors"
	"net/http"
	"strings"
	"time"

	"github.com/google/uuid"

	"github.com/bankedge/bankedge/modules/psd2/httpsig"
)

// Signer signs requests for one TPP.
type Signer struct {
	Profile   httpsig.Profile
	Algorithm httpsig.Algorithm
	// QSEAL and QSEALKey sign; QWAC is only copied into
	// X-Client-Certificate and may be nil.
	QSEAL    *x509.Certificate
	QSEALKey crypto.Signer
	QWAC     *x509.Certificate
}

// Sign adds X-Request-ID (when absent), Digest, Signature,
// TPP-Signature-Certificate and X-Client-Certificate to header, and returns
// the body to send. In a profile that hashes minified JSON the returned body
// is the minified JSON, because the gateway hashes the bytes it receives.
func (s *Signer) Sign(method, requestURI string, header http.Header, body []byte) ([]byte, error) {
	if s.QSEAL == nil || s.QSEALKey == nil {
		return nil, errors.New("signing needs a QSEAL certificate and its private key")
	}
	if s.Algorithm.Name == "" {
		s.Algorithm = httpsig.RSASHA256
	}
	if s.Profile.CompactJSON && len(body) > 0 {
		var compact bytes.Buffer
		if json.Compact(&compact, body) == nil {
			body = compact.Bytes()
		}
	}
	if header.Get("X-Request-ID") == "" {
		header.Set("X-Request-ID", uuid.NewString())
	}
	digestAlg := httpsig.SHA256
	if s.Algorithm.Hash == httpsig.SHA512.Hash {
		digestAlg = httpsig.SHA512
	}
	header.Set("Digest", httpsig.FormatDigest(digestAlg, httpsig.Sum(digestAlg, body), s.Profile.DigestEncoding))

	headers := append([]string(nil), s.Profile.RequiredHeaders...)
	for _, h := range s.Profile.ConditionalHeaders {
		if header.Get(h) != "" {
			headers = append(headers, h)
		}
	}
	if !s.Profile.ExactHeaders && header.Get("Date") != "" {
		headers = append(headers, "date")
	}
	signing, err := httpsig.AppendSigningString(nil, headers, func(name string) (string, bool) {
		if name == "(request-target)" {
			return strings.ToLower(method) + " " + requestURI, true
		}
		v := header.Values(name)
		return strings.Join(v, ", "), len(v) > 0
	})
	if err != nil {
		return nil, err
	}
	sig, err := httpsig.Sign(s.QSEALKey, s.Algorithm, s.Profile.Message(signing))
	if err != nil {
		return nil, err
	}
	keyID := httpsig.KeyID{Serial: s.QSEAL.SerialNumber}
	if s.Profile.KeyIDIssuer {
		keyID.Issuer = s.QSEAL.Issuer.String()
	}
	header.Set("Signature", httpsig.Signature{
		KeyID:     keyID.String(),
		Algorithm: s.Algorithm.Name,
		Headers:   headers,
		Signature: sig,
	}.String())
	header.Set("TPP-Signature-Certificate", base64.StdEncoding.EncodeToString(s.QSEAL.Raw))
	if s.QWAC != nil {
		header.Set("X-Client-Certificate", base64.StdEncoding.EncodeToString(s.QWAC.Raw))
	}
	return body, nil
}

// HTTPClient returns a client that presents qwac in the TLS handshake and
// trusts roots (the system roots when nil) for the gateway's certificate.
func HTTPClient(qwac *Identity, roots *x509.CertPool, insecure bool) *http.Client {
	cfg := &tls.Config{RootCAs: roots, InsecureSkipVerify: insecure, MinVersion: tls.VersionTLS12}
	if qwac != nil {
		cfg.Certificates = []tls.Certificate{qwac.TLSCertificate()}
	}
	return &http.Client{
		Transport: &http.Transport{TLSClientConfig: cfg, ForceAttemptHTTP2: true},
		Timeout:   60 * time.Second,
	}
}
