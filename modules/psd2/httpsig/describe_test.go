package httpsig

import "testing"

func TestDescribe(t *testing.T) {
	for _, c := range []struct {
		got, want string
	}{
		{Piraeus.DescribeDigest(SHA256), "profile piraeus: SHA-256 of the minified JSON body (or of the body as sent), lower-case hex, base64"},
		{BerlinGroup.DescribeDigest(SHA512), "profile berlingroup: SHA-512 of the body as sent, base64"},
		{Piraeus.DescribeSignature(RSASHA256, []string{"digest", "x-request-id"}),
			`profile piraeus: rsa-sha256 with the TPP-Signature-Certificate key over the base64 of the signing string of digest x-request-id, one "name: value" line each, joined by \n`},
		{BerlinGroup.DescribeSignature(RSASHA512, []string{"digest", "x-request-id", "psu-id"}),
			`profile berlingroup: rsa-sha512 with the TPP-Signature-Certificate key over the signing string of digest x-request-id psu-id, one "name: value" line each, joined by \n`},
	} {
		if c.got != c.want {
			t.Errorf("got  %s\nwant %s", c.got, c.want)
		}
	}
}
