// Command psd2floor measures the crypto floor of a signed PSD2 request: the
// work no gateway can skip, on the requests a load test sends. bench/psd2.sh
// runs it on the gateway's CPU between its load runs, so that the floor and
// the gateway's cost per request come from the same core in the same run.
//
//	psd2floor -targets targets.json [-profile piraeus] [-time 1s]
//
// targets.json holds vegeta JSON targets as `bankedge tpp sign --vegeta`
// writes them. Before measuring, every request is checked the way the
// gateway checks it (the signing string is rebuilt from the headers and the
// signature must verify), and the QSEAL's verifier is built once, as the
// gateway keeps it with the certificate. The floor of one request is:
//
//   - one base64 decode of the Signature header's signature value,
//   - one SHA-256 of the body (the Digest header),
//   - one RSA PKCS #1 v1.5 verification, with the hash of the signing
//     string it covers.
//
// It prints one line of key=value pairs, in microseconds of thread CPU time
// per request: floor_us (with internal/rsaverify, what the gateway uses),
// floor_stdlib_us (with crypto/rsa), and the parts verify_us,
// verify_stdlib_us, sha256_us and base64_us.
package main

import (
	"bufio"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"net/http"
	"os"
	"runtime"
	"strings"
	"syscall"
	"time"
	"unsafe"

	"github.com/bankedge/bankedge/internal/rsaverify"
	"github.com/bankedge/bankedge/modules/psd2/certheader"
	"github.com/bankedge/bankedge/modules/psd2/httpsig"
)

// request is what the floor needs from one signed request.
type request struct {
	body   []byte
	sigB64 string
	msg    []byte // the bytes the signature covers
	alg    httpsig.Algorithm
	pub    *rsa.PublicKey
	v      *rsaverify.Verifier
}

func main() {
	targets := flag.String("targets", "", "vegeta JSON targets file (required)")
	profileName := flag.String("profile", "piraeus", "signature profile: piraeus or berlingroup")
	perPart := flag.Duration("time", time.Second, "CPU time spent measuring each figure")
	limit := flag.Int("n", 256, "use at most this many requests of the file, in turn")
	flag.Parse()
	if *targets == "" {
		flag.Usage()
		os.Exit(2)
	}
	if err := run(*targets, *profileName, *perPart, *limit); err != nil {
		fmt.Fprintln(os.Stderr, "psd2floor:", err)
		os.Exit(1)
	}
}

func run(path, profileName string, perPart time.Duration, limit int) error {
	profile, err := httpsig.ProfileByName(profileName)
	if err != nil {
		return err
	}
	reqs, err := load(path, profile, limit)
	if err != nil {
		return err
	}
	runtime.LockOSThread()
	var sigBuf [1024]byte
	var sum [sha256.Size]byte
	decode := func(r *request) []byte {
		sig, err := base64.StdEncoding.AppendDecode(sigBuf[:0], []byte(r.sigB64))
		if err != nil {
			panic(err)
		}
		return sig
	}
	hashBody := func(r *request) { sum = sha256.Sum256(r.body) }
	verify := func(r *request, sig []byte) {
		d := httpsig.AppendSum(sum[:0], httpsig.DigestAlgorithm{Hash: r.alg.Hash}, r.msg)
		if r.v.VerifyPKCS1v15(r.alg.Hash, d, sig) != nil {
			panic("signature does not verify")
		}
	}
	verifyStdlib := func(r *request, sig []byte) {
		d := httpsig.AppendSum(sum[:0], httpsig.DigestAlgorithm{Hash: r.alg.Hash}, r.msg)
		if rsa.VerifyPKCS1v15(r.pub, r.alg.Hash, d, sig) != nil {
			panic("signature does not verify")
		}
	}
	sigs := make([][]byte, len(reqs))
	for i := range reqs {
		sigs[i] = append([]byte(nil), decode(&reqs[i])...)
	}
	figures := []struct {
		name string
		op   func(i int)
	}{
		{"floor_us", func(i int) { r := &reqs[i]; hashBody(r); verify(r, decode(r)) }},
		{"floor_stdlib_us", func(i int) { r := &reqs[i]; hashBody(r); verifyStdlib(r, decode(r)) }},
		{"verify_us", func(i int) { verify(&reqs[i], sigs[i]) }},
		{"verify_stdlib_us", func(i int) { verifyStdlib(&reqs[i], sigs[i]) }},
		{"sha256_us", func(i int) { hashBody(&reqs[i]) }},
		{"base64_us", func(i int) { decode(&reqs[i]) }},
	}
	var out []string
	for _, f := range figures {
		us, err := measure(f.op, len(reqs), perPart)
		if err != nil {
			return err
		}
		out = append(out, fmt.Sprintf("%s=%.2f", f.name, us))
	}
	r := reqs[0]
	out = append(out, fmt.Sprintf("bits=%d body_bytes=%d requests=%d", r.pub.N.BitLen(), len(r.body), len(reqs)))
	fmt.Println(strings.Join(out, " "))
	return nil
}

// measure runs op over the requests in turn until it has used perPart of
// this thread's CPU time, and returns microseconds per call.
func measure(op func(i int), n int, perPart time.Duration) (float64, error) {
	for i := range n { // warm caches and branch predictors
		op(i)
	}
	start, err := threadCPU()
	if err != nil {
		return 0, err
	}
	calls := 0
	for {
		for range 16 {
			op(calls % n)
			calls++
		}
		now, _ := threadCPU()
		if used := now - start; used >= perPart {
			return float64(used.Nanoseconds()) / 1e3 / float64(calls), nil
		}
	}
}

// threadCPU is the CPU time of the calling OS thread.
func threadCPU() (time.Duration, error) {
	const clockThreadCPUTimeID = 3
	var ts syscall.Timespec
	if _, _, errno := syscall.RawSyscall(syscall.SYS_CLOCK_GETTIME, clockThreadCPUTimeID, uintptr(unsafe.Pointer(&ts)), 0); errno != 0 {
		return 0, errno
	}
	return time.Duration(ts.Nano()), nil
}

// load reads the targets and checks every one as the gateway would.
func load(path string, profile httpsig.Profile, limit int) ([]request, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	verifiers := map[string]*rsaverify.Verifier{}
	var reqs []request
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 4<<20)
	for sc.Scan() && len(reqs) < limit {
		var t struct {
			Method string      `json:"method"`
			URL    string      `json:"url"`
			Header http.Header `json:"header"`
			Body   []byte      `json:"body"`
		}
		if err := json.Unmarshal(sc.Bytes(), &t); err != nil {
			return nil, fmt.Errorf("%s: %w", path, err)
		}
		sig, err := httpsig.ParseSignature(t.Header.Get("Signature"))
		if err != nil {
			return nil, err
		}
		alg, err := httpsig.ParseAlgorithm(sig.Algorithm)
		if err != nil {
			return nil, err
		}
		signing, err := httpsig.AppendSigningString(nil, sig.Headers, func(name string) (string, bool) {
			v := t.Header.Values(name)
			return strings.Join(v, ", "), len(v) > 0
		})
		if err != nil {
			return nil, err
		}
		certValue := t.Header.Get("TPP-Signature-Certificate")
		v, ok := verifiers[certValue]
		if !ok {
			der, err := certheader.Decode(certValue)
			if err != nil {
				return nil, err
			}
			cert, err := x509.ParseCertificate(der)
			if err != nil {
				return nil, err
			}
			pub, ok := cert.PublicKey.(*rsa.PublicKey)
			if !ok {
				return nil, errors.New("the QSEAL key is not RSA")
			}
			if v, err = rsaverify.New(pub); err != nil {
				return nil, err
			}
			verifiers[certValue] = v
		}
		r := request{body: t.Body, sigB64: sig.Signature, msg: profile.Message(signing), alg: alg, pub: v.PublicKey(), v: v}
		if err := httpsig.Verify(r.pub, alg, r.msg, r.sigB64); err != nil {
			return nil, fmt.Errorf("request %d of %s: %w (wrong -profile?)", len(reqs)+1, path, err)
		}
		reqs = append(reqs, r)
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	if len(reqs) == 0 {
		return nil, fmt.Errorf("%s holds no targets", path)
	}
	return reqs, nil
}
