package httpsig

import (
	"crypto"
	"crypto/rsa"
	"encoding/base64"
	"fmt"

	"github.com/bankedge/bankedge/internal/rsaverify"
)

// KeyVerifier checks the signatures made with one key. Build it once per
// key with NewKeyVerifier, when the certificate that carries the key is
// verified, and keep it with the certificate: for RSA keys of 2048 to 4096
// bits it holds the key's precomputed constants (internal/rsaverify), and
// then Verify allocates nothing and costs a fraction of crypto/rsa's time.
// Other RSA keys are verified by crypto/rsa, with the same result. A
// KeyVerifier is immutable and safe for concurrent use.
type KeyVerifier struct {
	pub crypto.PublicKey
	// rsa is pub when it is an RSA key.
	rsa *rsa.PublicKey
	// fast is set when rsaverify takes the key.
	fast *rsaverify.Verifier
}

// NewKeyVerifier returns the verifier of pub. It never fails: a key that
// the algorithms cannot use (not RSA) fails every Verify, as Verify would.
func NewKeyVerifier(pub crypto.PublicKey) *KeyVerifier {
	v := &KeyVerifier{pub: pub}
	v.rsa, _ = pub.(*rsa.PublicKey)
	if v.rsa != nil {
		// rsaverify refuses keys below 2048 bits and keys crypto/rsa
		// would refuse; crypto/rsa then gives its own answer.
		v.fast, _ = rsaverify.New(v.rsa)
	}
	return v
}

// Fast reports whether the key's constants are precomputed, so that Verify
// does not go through crypto/rsa.
func (v *KeyVerifier) Fast() bool { return v.fast != nil }

// Verify checks an RSA PKCS#1 v1.5 signature, given as base64 text, over
// msg, as the package-level Verify does.
func (v *KeyVerifier) Verify(alg Algorithm, msg []byte, sigB64 string) error {
	if v.rsa == nil {
		return fmt.Errorf("%w: %s needs an RSA key, the certificate has %T", ErrAlgorithm, alg.Name, v.pub)
	}
	if err := checkHash(alg); err != nil {
		return err
	}
	var sum [64]byte
	digest := AppendSum(sum[:0], DigestAlgorithm{Hash: alg.Hash}, msg)
	if len(sigB64) > maxStackSignature {
		sig, err := base64.StdEncoding.DecodeString(sigB64)
		if err != nil {
			return fmt.Errorf("%w: signature is not base64", ErrVerification)
		}
		return v.verifyDecoded(alg.Hash, digest, sig)
	}
	// The text is copied first: a string converted to []byte for the
	// decoder would be copied to the heap.
	var text [maxStackSignature]byte
	var raw [maxStackSignature * 3 / 4]byte
	n := copy(text[:], sigB64)
	m, err := base64.StdEncoding.Decode(raw[:], text[:n])
	if err != nil {
		return fmt.Errorf("%w: signature is not base64", ErrVerification)
	}
	return v.verifyDecoded(alg.Hash, digest, raw[:m])
}

// maxStackSignature is the longest base64 signature decoded in stack
// buffers: RSA-4096 signatures are 684 characters, RSA-8192 1368.
const maxStackSignature = 1024

func (v *KeyVerifier) verifyDecoded(hash crypto.Hash, digest, sig []byte) error {
	var err error
	if v.fast != nil {
		err = v.fast.VerifyPKCS1v15(hash, digest, sig)
	} else {
		err = rsa.VerifyPKCS1v15(v.rsa, hash, digest, sig)
	}
	if err != nil {
		return ErrVerification
	}
	return nil
}

// Verify checks an RSA PKCS#1 v1.5 signature, given as base64 text, over
// msg, with crypto/rsa. For a key that verifies more than once, keep a
// KeyVerifier instead.
func Verify(pub crypto.PublicKey, alg Algorithm, msg []byte, sigB64 string) error {
	v := &KeyVerifier{pub: pub}
	v.rsa, _ = pub.(*rsa.PublicKey)
	return v.Verify(alg, msg, sigB64)
}
