package psd2

import (
	"bytes"
	"crypto/sha512"
	"encoding/json"
	"net/http"

	"github.com/bankedge/bankedge/modules/psd2/httpsig"
)

// checkDigest reads the body (bounded), checks the Digest header against it
// and puts the body back for the next handler.
func (h *QSEAL) checkDigest(r *http.Request, body *bodyBuffer) *rejection {
	value := header(r, headerDigest)
	if value == "" {
		return rejectPath(SignatureInvalid, headerDigest, "Digest header is missing")
	}
	// Room for the usual one or two values, so that parsing does not
	// allocate.
	var room [2]httpsig.DigestValue
	digests, err := httpsig.AppendDigest(room[:0], value)
	if err != nil {
		return rejectPath(FormatError, headerDigest, err.Error())
	}
	if rej := body.readBody(r, h.MaxBodySize); rej != nil {
		return rej
	}
	if h.digestMatches(digests, body.buf.Bytes()) {
		return nil
	}
	if h.profile.CompactJSON {
		var compact bytes.Buffer
		if json.Compact(&compact, body.buf.Bytes()) == nil && h.digestMatches(digests, compact.Bytes()) {
			return nil
		}
	}
	return rejectPath(SignatureInvalid, headerDigest, "Digest does not match the request body ("+
		h.profile.DescribeDigest(sentDigestAlgorithm(digests))+")")
}

func (h *QSEAL) digestMatches(digests []httpsig.DigestValue, body []byte) bool {
	var sum [sha512.Size]byte
	for i := range digests {
		if d := &digests[i]; d.Supported && d.Matches(httpsig.AppendSum(sum[:0], d.Alg, body), h.profile.DigestEncoding) {
			return true
		}
	}
	return false
}

// sentDigestAlgorithm is the first supported algorithm of the Digest
// header, which the mismatch message names.
func sentDigestAlgorithm(digests []httpsig.DigestValue) httpsig.DigestAlgorithm {
	for _, d := range digests {
		if d.Supported {
			return d.Alg
		}
	}
	return httpsig.SHA256
}
