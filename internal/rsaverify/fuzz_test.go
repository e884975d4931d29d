package rsaverify

import (
	"crypto/rsa"
	"errors"
	"math/big"
	"testing"
)

// Signature shapes the fuzz target builds before comparing the verdicts.
const (
	shapeValid         = iota // a real signature of the digest
	shapeFlipSignature        // a real signature with one byte changed
	shapeOtherDigest          // a real signature, checked against a changed digest
	shapeRaw                  // the fuzzer's bytes as the signature
	shapeCraftedEM            // the raw RSA signature of the expected encoding with one byte changed
	shapePlusModulus          // a real signature plus n (same value mod n)
	shapeResized              // a real signature with a byte added or removed
	shapeCount
)

// FuzzVerifyPKCS1v15 is the differential test against crypto/rsa: for the
// fixed test keys (2048 to 4104 bits, e from 3 to 2³¹−1), the three hashes
// and every signature shape above, rsaverify and crypto/rsa must both
// accept or both refuse. Run it with both kernels:
//
//	go test -run '^$' -fuzz FuzzVerifyPKCS1v15 -fuzztime 5m ./internal/rsaverify
//	go test -tags purego -run '^$' -fuzz FuzzVerifyPKCS1v15 -fuzztime 5m ./internal/rsaverify
//
// The seed corpus in testdata/fuzz runs as a plain test.
func FuzzVerifyPKCS1v15(f *testing.F) {
	f.Add(uint8(0), uint8(0), uint8(shapeValid), []byte("payment"), uint16(0), uint8(0), []byte(nil))
	f.Add(uint8(4), uint8(2), uint8(shapeFlipSignature), []byte("x"), uint16(100), uint8(1), []byte(nil))
	f.Add(uint8(1), uint8(0), uint8(shapeCraftedEM), []byte("e=3"), uint16(1), uint8(3), []byte(nil))
	f.Fuzz(differential)
}

// differential builds one signature shape and compares the two verdicts.
func differential(t *testing.T, keyIdx, hashIdx, shape uint8, msg []byte, pos uint16, delta uint8, raw []byte) {
	priv := keyIndex(t, int(keyIdx))
	hash := hashes[int(hashIdx)%len(hashes)]
	digest := digestOf(hash, msg)
	v, err := New(&priv.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	sign := func() []byte {
		sig, err := rsa.SignPKCS1v15(nil, priv, hash, digest)
		if err != nil {
			t.Fatal(err)
		}
		return sig
	}
	if delta == 0 {
		delta = 1
	}
	checked := digest
	var sig []byte
	switch shape % shapeCount {
	case shapeValid:
		sig = sign()
	case shapeFlipSignature:
		sig = sign()
		sig[int(pos)%len(sig)] ^= delta
	case shapeOtherDigest:
		sig = sign()
		checked = append([]byte(nil), digest...)
		checked[int(pos)%len(checked)] ^= delta
	case shapeRaw:
		sig = raw
	case shapeCraftedEM:
		em := encoded(priv, hash, digest)
		em[int(pos)%len(em)] ^= delta
		m := new(big.Int).SetBytes(em)
		if m.Cmp(priv.N) >= 0 {
			return
		}
		sig = rawSign(priv, m)
	case shapePlusModulus:
		s := new(big.Int).SetBytes(sign())
		sig = s.Add(s, priv.N).Bytes()
	case shapeResized:
		sig = sign()
		if pos%2 == 0 {
			sig = append([]byte{delta}, sig...)
		} else {
			sig = sig[1:]
		}
	}
	want := rsa.VerifyPKCS1v15(&priv.PublicKey, hash, checked, sig)
	got := v.VerifyPKCS1v15(hash, checked, sig)
	if (got == nil) != (want == nil) {
		t.Fatalf("%d-bit key, %v, shape %d: rsaverify says %v, crypto/rsa says %v", priv.N.BitLen(), hash, shape%shapeCount, got, want)
	}
	if got != nil && !errors.Is(got, ErrVerification) {
		t.Fatalf("refusal is %v, want ErrVerification", got)
	}
	if shape%shapeCount == shapeValid && got != nil {
		t.Fatalf("a valid signature is refused by both")
	}
}

// TestDifferentialSweep runs every key, hash and shape once with both
// kernels, so that the comparison does not depend on the corpus alone.
func TestDifferentialSweep(t *testing.T) {
	for _, fast := range []bool{true, false} {
		withKernel(t, fast && fastKernel)
		for k := range testKeyFiles {
			for h := range hashes {
				for shape := range shapeCount {
					differential(t, uint8(k), uint8(h), uint8(shape), []byte{byte(k), byte(h)}, uint16(31*shape+k), uint8(h+1), []byte{1, 2, 3})
				}
			}
		}
	}
}
