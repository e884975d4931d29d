package httpsig_test

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/bankedge/bankedge/internal/shareddata"
	"github.com/bankedge/bankedge/modules/psd2/httpsig"
)

// The seed's Example 1: Digest, X-Request-ID, and the "Base64 encoding of the
// Signing string" that Piraeus signs.
const (
	seedDigest1    = "SHA-256=MDkyOGYzY2ZiN2U3YmNlODI4Y2E4NmEzZjdkOGNjNzcxNzg2YTViYTk5MzQzOTMwZjBmMDU3MTdmNTRiOGQxMg=="
	seedRequestID1 = "1f58df29-d312-4a1a-a006-4068ae994071"
	seedSigningB64 = "ZGlnZXN0OiBTSEEtMjU2PU1Ea3lPR1l6WTJaaU4yVTNZbU5sT0RJNFkyRTRObUV6Wmpka09HTmpOemN4TnpnMllUVmlZVGs1TXpRek9UTXdaakJtTURVM01UZG1OVFJpT0dReE1nPT0KeC1yZXF1ZXN0LWlkOiAxZjU4ZGYyOS1kMzEyLTRhMWEtYTAwNi00MDY4YWU5OTQwNzE="

	// Example 2 (SHA-512). The seed prints its base64 signing string in the
	// "Signed data" slot by mistake (reference §3.3 item 7).
	seedDigest2     = "SHA-512=NDk4NTExMmU1MjYwNzIyYTQzNWI4Y2IwNGQ0NjJmN2MwMTI1NzZkNDJkZDg1ZjU1YWY2YzQ5ZDY5OTAxMTkyZDg1ZjExNTRjZDA2OTgyNDA1NTc3ODE4NDUyNTIwMjBkMTliNmZhMDIwMGE2ZTI1Y2VmMDcwMmZjZTdlZGYxMGE="
	seedRequestID2  = "49caf623-0b89-4f22-bcd0-d8cd444303b2"
	seedSigning2B64 = "ZGlnZXN0OiBTSEEtNTEyPU5EazROVEV4TW1VMU1qWXdOekl5WVRRek5XSTRZMkl3TkdRME5qSm1OMk13TVRJMU56WmtOREprWkRnMVpqVTFZV1kyWXpRNVpEWTVPVEF4TVRreVpEZzFaakV4TlRSalpEQTJPVGd5TkRBMU5UYzNPREU0TkRVeU5USXdNakJrTVRsaU5tWmhNREl3TUdFMlpUSTFZMlZtTURjd01tWmpaVGRsWkdZeE1HRT0KeC1yZXF1ZXN0LWlkOiA0OWNhZjYyMy0wYjg5LTRmMjItYmNkMC1kOGNkNDQ0MzAzYjI="
)

func headerFunc(m map[string]string) func(string) (string, bool) {
	return func(name string) (string, bool) {
		v, ok := m[name]
		return v, ok
	}
}

func TestPiraeusSigningString(t *testing.T) {
	for _, tc := range []struct {
		digest, requestID, wantB64 string
	}{
		{seedDigest1, seedRequestID1, seedSigningB64},
		{seedDigest2, seedRequestID2, seedSigning2B64},
	} {
		headers := []string{"digest", "x-request-id"}
		// Values arrive with surrounding whitespace from some clients; the
		// signing string has them trimmed.
		values := headerFunc(map[string]string{"digest": " " + tc.digest, "x-request-id": tc.requestID + "\t"})
		got, err := httpsig.AppendSigningString(nil, headers, values)
		if err != nil {
			t.Fatal(err)
		}
		want := "digest: " + tc.digest + "\nx-request-id: " + tc.requestID
		if string(got) != want {
			t.Errorf("signing string = %q, want %q", got, want)
		}
		if msg := httpsig.Piraeus.Message(got); string(msg) != tc.wantB64 {
			t.Errorf("Piraeus.Message = %s, want %s", msg, tc.wantB64)
		}
		if msg := httpsig.BerlinGroup.Message(got); string(msg) != want {
			t.Errorf("BerlinGroup.Message = %q, want the signing string", msg)
		}
		// Appending keeps what dst holds.
		prefixed, err := httpsig.AppendSigningString([]byte("xx"), headers, values)
		if err != nil || string(prefixed) != "xx"+want {
			t.Errorf("AppendSigningString with a prefix = %q, %v", prefixed, err)
		}
	}
	if len(seedSigningB64) != 208 {
		t.Errorf("the seed's base64 signing string has %d characters, the reference says 208", len(seedSigningB64))
	}
}

// TestPiraeusSigningStringSeedFile compares the committed constant with the
// seed, when ../shared exists.
func TestPiraeusSigningStringSeedFile(t *testing.T) {
	data, err := os.ReadFile(shareddata.Path(t, "seeds", "piraeus-psd2-certificates.txt"))
	if err != nil {
		t.Skipf("seed not readable: %v", err)
	}
	lines := slices.Collect(strings.Lines(string(data)))
	found := false
	for i, line := range lines {
		if strings.Contains(line, "Base64 encoding of the Singing string") {
			for _, next := range lines[i+1:] {
				if next = strings.TrimSpace(next); next != "" {
					if next != seedSigningB64 {
						t.Errorf("seed has %q", next)
					}
					found = true
					break
				}
			}
		}
	}
	if !found {
		t.Error("the seed's base64 signing string was not found")
	}
}

func TestAppendSigningString(t *testing.T) {
	values := headerFunc(map[string]string{"digest": "SHA-256=x", "date": "Sun, 22 Nov 2026 12:00:00 GMT", "empty": ""})
	got, err := httpsig.AppendSigningString(nil, []string{"date", "digest", "empty"}, values)
	if err != nil || string(got) != "date: Sun, 22 Nov 2026 12:00:00 GMT\ndigest: SHA-256=x\nempty: " {
		t.Errorf("AppendSigningString = %q, %v", got, err)
	}
	if got, err := httpsig.AppendSigningString(nil, nil, values); err != nil || len(got) != 0 {
		t.Errorf("no headers: %q, %v", got, err)
	}
	_, err = httpsig.AppendSigningString(nil, []string{"digest", "x-request-id"}, values)
	if !errors.Is(err, httpsig.ErrMissingHeader) || !strings.Contains(err.Error(), "x-request-id") {
		t.Errorf("missing header: %v", err)
	}
}

func TestCheckHeaders(t *testing.T) {
	present := func(names ...string) func(string) bool {
		return func(n string) bool { return slices.Contains(names, n) }
	}
	for _, tc := range []struct {
		name    string
		p       httpsig.Profile
		signed  []string
		present func(string) bool
		ok      bool
	}{
		{"piraeus exact", httpsig.Piraeus, []string{"digest", "x-request-id"}, nil, true},
		{"piraeus order free", httpsig.Piraeus, []string{"x-request-id", "digest"}, nil, true},
		{"piraeus missing digest", httpsig.Piraeus, []string{"x-request-id"}, nil, false},
		{"piraeus nothing signed", httpsig.Piraeus, nil, nil, false},
		{"piraeus extra date", httpsig.Piraeus, []string{"digest", "x-request-id", "date"}, nil, false},
		{"piraeus extra psu-id", httpsig.Piraeus, []string{"digest", "x-request-id", "psu-id"}, nil, false},
		{"piraeus duplicate", httpsig.Piraeus, []string{"digest", "x-request-id", "digest"}, nil, false},
		{"piraeus duplicate instead of one", httpsig.Piraeus, []string{"digest", "digest"}, nil, false},
		{"bg required", httpsig.BerlinGroup, []string{"digest", "x-request-id"}, present(), true},
		{"bg with date and (request-target)", httpsig.BerlinGroup, []string{"(request-target)", "date", "digest", "x-request-id"}, present("date"), true},
		{"bg missing x-request-id", httpsig.BerlinGroup, []string{"digest", "date"}, present(), false},
		{"bg psu-id present and signed", httpsig.BerlinGroup, []string{"digest", "x-request-id", "psu-id"}, present("psu-id"), true},
		{"bg psu-id present, not signed", httpsig.BerlinGroup, []string{"digest", "x-request-id"}, present("psu-id"), false},
		{"bg psu-corporate-id present, not signed", httpsig.BerlinGroup, []string{"digest", "x-request-id", "psu-id"}, present("psu-id", "psu-corporate-id"), false},
		{"bg tpp-redirect-uri present, not signed", httpsig.BerlinGroup, []string{"digest", "x-request-id"}, present("tpp-redirect-uri"), false},
		{"bg all conditional signed", httpsig.BerlinGroup, []string{"digest", "x-request-id", "psu-id", "psu-corporate-id", "tpp-redirect-uri"},
			present("psu-id", "psu-corporate-id", "tpp-redirect-uri"), true},
		// Signing an absent header is the signing string's problem
		// (ErrMissingHeader), not the profile's.
		{"bg conditional signed but absent", httpsig.BerlinGroup, []string{"digest", "x-request-id", "psu-id"}, present(), true},
		{"bg duplicate", httpsig.BerlinGroup, []string{"digest", "x-request-id", "x-request-id"}, present(), false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.p.CheckHeaders(tc.signed, tc.present)
			if tc.ok && err != nil {
				t.Errorf("CheckHeaders(%q) = %v", tc.signed, err)
			}
			if !tc.ok && !errors.Is(err, httpsig.ErrHeaders) {
				t.Errorf("CheckHeaders(%q) = %v, want ErrHeaders", tc.signed, err)
			}
		})
	}
}

func TestProfileByName(t *testing.T) {
	for name, want := range map[string]string{"piraeus": "piraeus", "Piraeus": "piraeus", "berlingroup": "berlingroup", "Berlin-Group": "berlingroup", "bg": "berlingroup"} {
		if p, err := httpsig.ProfileByName(name); err != nil || p.Name != want {
			t.Errorf("ProfileByName(%q) = %q, %v", name, p.Name, err)
		}
	}
	if _, err := httpsig.ProfileByName("stet"); err == nil {
		t.Error("unknown profile accepted")
	}
	p := httpsig.Piraeus
	if p.DigestEncoding != httpsig.DigestHex || !p.SignBase64 || !p.ExactHeaders || p.KeyIDIssuer || !p.CompactJSON {
		t.Errorf("Piraeus profile: %+v", p)
	}
	bg := httpsig.BerlinGroup
	if bg.DigestEncoding != httpsig.DigestRaw || bg.SignBase64 || bg.ExactHeaders || !bg.KeyIDIssuer {
		t.Errorf("BerlinGroup profile: %+v", bg)
	}
}

func TestSignVerify(t *testing.T) {
	key := rsaKey(t, 2048)
	other := rsaKey(t, 3072)
	signing := []byte("digest: " + seedDigest1 + "\nx-request-id: " + seedRequestID1)
	for _, alg := range []httpsig.Algorithm{httpsig.RSASHA256, httpsig.RSASHA512} {
		for _, p := range []httpsig.Profile{httpsig.Piraeus, httpsig.BerlinGroup} {
			t.Run(alg.Name+"/"+p.Name, func(t *testing.T) {
				msg := p.Message(signing)
				sig, err := httpsig.Sign(key, alg, msg)
				if err != nil {
					t.Fatal(err)
				}
				raw, err := base64.StdEncoding.DecodeString(sig)
				if err != nil || len(raw) != 256 {
					t.Fatalf("signature is %d bytes, %v", len(raw), err)
				}
				if err := httpsig.Verify(&key.PublicKey, alg, msg, sig); err != nil {
					t.Fatalf("Verify = %v", err)
				}
				fail := map[string]error{
					"tampered message":   httpsig.Verify(&key.PublicKey, alg, append(slices.Clone(msg), 'x'), sig),
					"other profile":      httpsig.Verify(&key.PublicKey, alg, otherProfile(p).Message(signing), sig),
					"tampered signature": httpsig.Verify(&key.PublicKey, alg, msg, flipByte(raw)),
					"other algorithm":    httpsig.Verify(&key.PublicKey, otherAlg(alg), msg, sig),
					"other key":          httpsig.Verify(&other.PublicKey, alg, msg, sig),
					"not base64":         httpsig.Verify(&key.PublicKey, alg, msg, "!"+sig),
					"empty signature":    httpsig.Verify(&key.PublicKey, alg, msg, ""),
				}
				for name, err := range fail {
					if !errors.Is(err, httpsig.ErrVerification) {
						t.Errorf("%s: Verify = %v, want ErrVerification", name, err)
					}
				}
			})
		}
	}
}

func TestSignVerifyWrongKeyType(t *testing.T) {
	ecKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	edPub, edKey, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	msg := []byte("digest: x")
	sig, err := httpsig.Sign(rsaKey(t, 2048), httpsig.RSASHA256, msg)
	if err != nil {
		t.Fatal(err)
	}
	for name, pub := range map[string]crypto.PublicKey{"ecdsa": &ecKey.PublicKey, "ed25519": edPub, "rsa private key": rsaKey(t, 2048), "nil": nil} {
		if err := httpsig.Verify(pub, httpsig.RSASHA256, msg, sig); !errors.Is(err, httpsig.ErrAlgorithm) {
			t.Errorf("Verify with %s key = %v, want ErrAlgorithm", name, err)
		}
	}
	// rsa-sha256 names RSA: signing with another key type must fail rather
	// than send an ECDSA signature under an RSA algorithm name.
	for name, signer := range map[string]crypto.Signer{"ecdsa": ecKey, "ed25519": edKey} {
		if got, err := httpsig.Sign(signer, httpsig.RSASHA256, msg); !errors.Is(err, httpsig.ErrAlgorithm) {
			t.Errorf("Sign with %s key = %.20q, %v; want ErrAlgorithm", name, got, err)
		}
	}
	// A zero Algorithm (no hash) is an error, not a panic.
	if err := httpsig.Verify(&rsaKey(t, 2048).PublicKey, httpsig.Algorithm{}, msg, sig); !errors.Is(err, httpsig.ErrAlgorithm) {
		t.Errorf("Verify with a zero Algorithm = %v", err)
	}
	if _, err := httpsig.Sign(rsaKey(t, 2048), httpsig.Algorithm{}, msg); !errors.Is(err, httpsig.ErrAlgorithm) {
		t.Errorf("Sign with a zero Algorithm = %v", err)
	}
}

// TestVerifyOpenSSL checks Verify and Sign against OpenSSL as an independent
// peer, signing the Piraeus message (the base64 text of the signing string)
// as the reference's README does with `openssl dgst -sign`.
func TestVerifyOpenSSL(t *testing.T) {
	openssl := needOpenSSL(t)
	key := rsaKey(t, 2048)
	dir := t.TempDir()
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	pubDER, err := x509.MarshalPKIXPublicKey(&key.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	keyPath, pubPath, msgPath, sigPath := filepath.Join(dir, "key.pem"), filepath.Join(dir, "pub.pem"), filepath.Join(dir, "msg"), filepath.Join(dir, "sig")
	mustWrite(t, keyPath, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}))
	mustWrite(t, pubPath, pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: pubDER}))
	msg := httpsig.Piraeus.Message([]byte("digest: " + seedDigest1 + "\nx-request-id: " + seedRequestID1))
	mustWrite(t, msgPath, msg)

	for _, alg := range []httpsig.Algorithm{httpsig.RSASHA256, httpsig.RSASHA512} {
		dgst := "-" + strings.TrimPrefix(alg.Name, "rsa-")
		out, err := exec.Command(openssl, "dgst", dgst, "-sign", keyPath, "-out", sigPath, msgPath).CombinedOutput()
		if err != nil {
			t.Fatalf("openssl dgst -sign: %v\n%s", err, out)
		}
		raw, err := os.ReadFile(sigPath)
		if err != nil {
			t.Fatal(err)
		}
		sig := base64.StdEncoding.EncodeToString(raw)
		if err := httpsig.Verify(&key.PublicKey, alg, msg, sig); err != nil {
			t.Errorf("%s: OpenSSL's signature does not verify: %v", alg.Name, err)
		}
		// PKCS#1 v1.5 is deterministic: our signature is OpenSSL's.
		ours, err := httpsig.Sign(key, alg, msg)
		if err != nil || ours != sig {
			t.Errorf("%s: Sign differs from openssl dgst -sign (%v)", alg.Name, err)
		}
		mustWrite(t, sigPath, raw)
		out, err = exec.Command(openssl, "dgst", dgst, "-verify", pubPath, "-signature", sigPath, msgPath).CombinedOutput()
		if err != nil || !strings.Contains(string(out), "Verified OK") {
			t.Errorf("%s: openssl dgst -verify: %v\n%s", alg.Name, err, out)
		}
	}
}

func mustWrite(t *testing.T, path string, data []byte) {
	t.Helper()
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}
}

func otherProfile(p httpsig.Profile) httpsig.Profile {
	if p.Name == httpsig.Piraeus.Name {
		return httpsig.BerlinGroup
	}
	return httpsig.Piraeus
}

func otherAlg(a httpsig.Algorithm) httpsig.Algorithm {
	if a == httpsig.RSASHA256 {
		return httpsig.RSASHA512
	}
	return httpsig.RSASHA256
}

func flipByte(raw []byte) string {
	c := slices.Clone(raw)
	c[len(c)/2] ^= 1
	return base64.StdEncoding.EncodeToString(c)
}
