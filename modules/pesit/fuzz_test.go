package pesit

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/bankedge/bankedge/modules/ca/registry"
	"github.com/bankedge/bankedge/modules/pesit/fpdu"
)

// streamSession is a session as it is once its CONNECT is accepted, in
// the given framings, whose partner sends in.
func streamSession(tb testing.TB, in []byte, clientPrefixed, upPrefixed bool) (*session, *scriptConn) {
	s, c, _ := scriptSession(tb, &Handler{ServerID: "BANKEDGE", failures: localFailures, limiter: localConnections}, in)
	s.accepted = true
	s.in = make([]byte, inBufSize)
	s.clientPrefixed, s.upPrefixed = clientPrefixed, upPrefixed
	s.partner = registry.Partner{PartnerID: "FUZZ", AccessType: registry.AccessBoth, AllowedFiles: []string{"OK*"}}
	s.down.init(s)
	return s, c
}

func framing(prefixed bool) fpdu.Framing {
	if prefixed {
		return fpdu.FramingPrefixed
	}
	return fpdu.FramingRaw
}

// parsesAsFPDUs reports whether b is a sequence of whole FPDUs in framing
// f: what the gateway writes to the partner itself (answers, ABORT).
func parsesAsFPDUs(b []byte, f fpdu.Framing) error {
	r := fpdu.NewReader(bytes.NewReader(b), f)
	for {
		if _, err := r.Next(); err != nil {
			if errors.Is(err, io.EOF) {
				return nil
			}
			return err
		}
	}
}

// mustBytes returns a helper that fails tb on an encoding error.
func mustBytes(tb testing.TB) func([]byte, error) []byte {
	return func(b []byte, err error) []byte {
		if err != nil {
			tb.Fatal(err)
		}
		return b
	}
}

// streamSeeds are partner streams after CONNECT, in raw framing: a push
// of an allowed file, a refused CREATE and SELECT, a download request,
// and garbage. Prefixed seeds are made from them.
func streamSeeds(tb testing.TB) map[string][][]byte {
	must := mustBytes(tb)
	const y = 0x42
	file := func(name string) fpdu.Param {
		return fpdu.PGI(fpdu.PGIFileID, fpdu.PIUint(fpdu.PIFileType, 0, 1), fpdu.PIString(fpdu.PIFileName, name))
	}
	create := func(name string) []byte {
		return must(fpdu.AppendFPDU(nil, fpdu.TypeCreate, y, 0, file(name), fpdu.PIUint(fpdu.PITransferID, 5, 1), fpdu.PIUint(fpdu.PIMaxEntitySize, 512, 2)))
	}
	sel := func(name string) []byte {
		return must(fpdu.AppendFPDU(nil, fpdu.TypeSelect, y, 0, file(name), fpdu.PIUint(fpdu.PITransferID, 0, 1), fpdu.PIUint(fpdu.PIMaxEntitySize, 512, 2)))
	}
	ctl := func(t fpdu.Type, params ...fpdu.Param) []byte { return must(fpdu.AppendFPDU(nil, t, y, 0, params...)) }
	return map[string][][]byte{
		"push": {create("OK.TXT"), ctl(fpdu.TypeORF), ctl(fpdu.TypeWrite),
			must(fpdu.AppendArticles(nil, y, []byte("hello"), []byte("world"))), fpdu.AppendSync(nil, fpdu.TypeSyn, y, 1),
			must(fpdu.AppendData(nil, fpdu.TypeDTFDA, y, []byte("seg"))), must(fpdu.AppendData(nil, fpdu.TypeDTFFA, y, []byte("ment"))),
			ctl(fpdu.TypeDTFEnd, fpdu.DiagOK.Param()),
			ctl(fpdu.TypeTransEnd, fpdu.PIUint(fpdu.PIByteCount, 17, 1), fpdu.PIUint(fpdu.PIArticleCount, 3, 1)),
			ctl(fpdu.TypeCRF, fpdu.DiagOK.Param()), ctl(fpdu.TypeDeselect, fpdu.DiagOK.Param()),
			must(fpdu.AppendFPDU(nil, fpdu.TypeRelease, y, 1, fpdu.DiagOK.Param()))},
		"refused": {create("SECRET"), sel("SECRET"), sel("OK.TXT"), ctl(fpdu.TypeORF), ctl(fpdu.TypeRead, fpdu.PIUint(fpdu.PIRestartPoint, 0, 1)),
			must(fpdu.AppendFPDU(nil, fpdu.TypeAbort, y, 1, fpdu.NewDiag(fpdu.ReasonPrematureStop).Param()))},
	}
}

// garbage is a partner stream that is not PeSIT past its prefix.
var garbage = []byte{0x00, 0x07, 0xAB, 0xCD, 0xEF, 0x01, 0x02, 0x03, 0x04}

// downSeeds are upstream streams, in raw framing: the answers to a push
// and to a pull, and an ABORT.
func downSeeds(tb testing.TB) map[string][][]byte {
	must := mustBytes(tb)
	const x = 0x01
	ack := func(t fpdu.Type, params ...fpdu.Param) []byte { return must(fpdu.AppendFPDU(nil, t, x, 0, params...)) }
	return map[string][][]byte{
		"push": {must(fpdu.AppendFPDU(nil, fpdu.TypeAConnect, x, 0x42, fpdu.PIByte(fpdu.PIVersion, fpdu.VersionE))),
			ack(fpdu.TypeAckCreate, fpdu.DiagOK.Param()), ack(fpdu.TypeAckORF, fpdu.DiagOK.Param()), ack(fpdu.TypeAckWrite, fpdu.DiagOK.Param()),
			fpdu.AppendSync(nil, fpdu.TypeAckSyn, x, 1),
			ack(fpdu.TypeAckTransEnd, fpdu.DiagOK.Param(), fpdu.PIUint(fpdu.PIByteCount, 17, 1), fpdu.PIUint(fpdu.PIArticleCount, 3, 1)),
			ack(fpdu.TypeAckCRF, fpdu.DiagOK.Param()), ack(fpdu.TypeAckDeselect, fpdu.DiagOK.Param()),
			must(fpdu.AppendFPDU(nil, fpdu.TypeRelConf, x, 0x42))},
		"pull": {ack(fpdu.TypeAckSelect, fpdu.DiagOK.Param(), fpdu.PIUint(fpdu.PITransferID, 9, 1)), ack(fpdu.TypeAckORF, fpdu.DiagOK.Param()),
			ack(fpdu.TypeAckRead, fpdu.DiagOK.Param()), must(fpdu.AppendArticles(nil, x, []byte("report"), []byte("lines"))),
			ack(fpdu.TypeDTFEnd, fpdu.DiagOK.Param()), ack(fpdu.TypeAckTransEnd, fpdu.NewDiag(fpdu.ReasonWrongCount).Param())},
		"abort": {must(fpdu.AppendFPDU(nil, fpdu.TypeAbort, x, 0x42, fpdu.NewDiag(fpdu.ReasonIOError).Param()))},
	}
}

// frame joins FPDUs into one stream, each its own NSDU in framing f.
func frame(tb testing.TB, f fpdu.Framing, fpdus [][]byte) []byte {
	var b []byte
	for _, fp := range fpdus {
		var err error
		if b, err = fpdu.AppendNSDU(b, f, fp); err != nil {
			tb.Fatal(err)
		}
	}
	return b
}

// FuzzUploadScanner feeds arbitrary partner bytes, after an accepted
// CONNECT, through the gateway's partner-to-upstream path (session.Read,
// as caddy-l4's proxy calls it): it must neither panic nor loop, forward
// no more than it received (plus the prefixes it adds when re-framing),
// and write to the partner only whole FPDUs.
func FuzzUploadScanner(f *testing.F) {
	for _, seed := range streamSeeds(f) {
		f.Add(frame(f, fpdu.FramingPrefixed, seed), true, true)
		f.Add(frame(f, fpdu.FramingRaw, seed), false, true)
	}
	f.Add(garbage, true, false)
	f.Fuzz(func(t *testing.T, in []byte, clientPrefixed, upPrefixed bool) {
		s, c := streamSession(t, in, clientPrefixed, upPrefixed)
		buf := make([]byte, 8<<10)
		out := 0
		for i := 0; ; i++ {
			if i > 4*len(in)+16 {
				t.Fatal("Read keeps returning without consuming the stream")
			}
			n, err := s.Read(buf)
			out += n
			if err != nil {
				break
			}
		}
		limit := len(in)
		if !clientPrefixed && upPrefixed {
			limit += 2 * (len(in)/fpdu.HeaderLen + 1)
		}
		if out > limit {
			t.Fatalf("forwarded %d bytes of %d", out, len(in))
		}
		if err := parsesAsFPDUs(c.out.Bytes(), framing(clientPrefixed)); err != nil {
			t.Fatalf("the gateway wrote to the partner % x: %v", c.out.Bytes(), err)
		}
	})
}

// FuzzDownloadScanner feeds arbitrary upstream bytes, in chunks of any
// size, through the gateway's upstream-to-partner path (session.Write):
// it must neither panic nor refuse a write, and pass the bytes on
// unchanged when both sides use the same framing, whatever it makes of
// them.
func FuzzDownloadScanner(f *testing.F) {
	for _, seed := range downSeeds(f) {
		f.Add(frame(f, fpdu.FramingPrefixed, seed), uint8(7), true, true, false)
		f.Add(frame(f, fpdu.FramingRaw, seed), uint8(0), false, true, false)
		f.Add(frame(f, fpdu.FramingPrefixed, seed), uint8(1), true, false, false)
	}
	ack0 := fpdu.AppendPreConnectionAnswer(nil, true, true)
	f.Add(append(ack0, frame(f, fpdu.FramingPrefixed, downSeeds(f)["push"])...), uint8(3), true, true, true)
	f.Fuzz(func(t *testing.T, in []byte, chunk uint8, upPrefixed, clientPrefixed, preConnection bool) {
		s, c := streamSession(t, nil, clientPrefixed, upPrefixed)
		skip := 0
		if preConnection {
			s.preAck = make(chan error, 1)
			s.down.swallow, skip = 4, 4
			if upPrefixed {
				s.down.swallow, skip = 6, 6
			}
		}
		size := int(chunk)
		if size == 0 {
			size = len(in) + 1
		}
		for p := in; len(p) > 0; {
			n := min(size, len(p))
			if w, err := s.Write(p[:n]); w != n || err != nil {
				t.Fatalf("Write(%d bytes) = %d, %v", n, w, err)
			}
			p = p[n:]
		}
		if clientPrefixed == upPrefixed {
			want := in[min(skip, len(in)):]
			if !bytes.Equal(c.out.Bytes(), want) {
				t.Fatalf("the partner received % x, the upstream sent % x", c.out.Bytes(), want)
			}
		}
	})
}

// TestStreamFuzzCorpus checks that the committed seed corpora exist, and
// that the seeds are what they say: the push and pull pass through whole.
func TestStreamFuzzCorpus(t *testing.T) {
	for _, name := range []string{"FuzzUploadScanner", "FuzzDownloadScanner"} {
		es, err := os.ReadDir(filepath.Join("testdata", "fuzz", name))
		if err != nil || len(es) < 3 {
			t.Fatalf("%s seed corpus: %d files, %v", name, len(es), err)
		}
	}
	push := frame(t, fpdu.FramingPrefixed, streamSeeds(t)["push"])
	s, _ := streamSession(t, push, true, true)
	fwd, err := io.ReadAll(readerFunc(s.Read))
	if !errors.Is(err, io.EOF) && err != nil && !strings.Contains(err.Error(), "EOF") {
		t.Fatalf("push: %v", err)
	}
	if !bytes.Equal(fwd, push) {
		t.Fatalf("the push seed was not forwarded whole: %d of %d bytes", len(fwd), len(push))
	}
}

type readerFunc func([]byte) (int, error)

func (f readerFunc) Read(p []byte) (int, error) { return f(p) }

// TestWriteStreamFuzzCorpus writes the seed corpora of the stream fuzz
// targets; run it with BANKEDGE_WRITE_FUZZ_CORPUS=1 after changing the
// seeds.
func TestWriteStreamFuzzCorpus(t *testing.T) {
	if os.Getenv("BANKEDGE_WRITE_FUZZ_CORPUS") == "" {
		t.Skip("set BANKEDGE_WRITE_FUZZ_CORPUS=1 to rewrite testdata/fuzz")
	}
	write := func(target, name string, args ...any) {
		var b strings.Builder
		b.WriteString("go test fuzz v1\n")
		for _, a := range args {
			switch v := a.(type) {
			case []byte:
				fmt.Fprintf(&b, "[]byte(%q)\n", v)
			case uint8:
				fmt.Fprintf(&b, "byte(%q)\n", rune(v))
			default:
				fmt.Fprintf(&b, "%T(%v)\n", v, v)
			}
		}
		dir := filepath.Join("testdata", "fuzz", target)
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, "seed-"+name), []byte(b.String()), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	for name, seed := range streamSeeds(t) {
		write("FuzzUploadScanner", name+"-prefixed", frame(t, fpdu.FramingPrefixed, seed), true, true)
		write("FuzzUploadScanner", name+"-raw-to-prefixed", frame(t, fpdu.FramingRaw, seed), false, true)
	}
	write("FuzzUploadScanner", "garbage", garbage, true, false)
	for name, seed := range downSeeds(t) {
		write("FuzzDownloadScanner", name+"-prefixed", frame(t, fpdu.FramingPrefixed, seed), uint8(7), true, true, false)
		write("FuzzDownloadScanner", name+"-prefixed-to-raw", frame(t, fpdu.FramingPrefixed, seed), uint8(1), true, false, false)
	}
	ack0 := fpdu.AppendPreConnectionAnswer(nil, true, true)
	write("FuzzDownloadScanner", "preconnection-answer", append(ack0, frame(t, fpdu.FramingPrefixed, downSeeds(t)["push"])...), uint8(3), true, true, true)
}
