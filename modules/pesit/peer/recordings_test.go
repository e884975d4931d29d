package peer

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"path/filepath"
	"testing"
	"time"

	"github.com/bankedge/bankedge/internal/shareddata"
	"github.com/bankedge/bankedge/modules/pesit/fpdu"
)

// The Connect:Express recordings are read in place from the shared
// folder next to the module root; the tests skip when it is absent.

// TestReplayCXPush feeds what Connect:Express sent in cx-push-1mb.raw to
// our server and compares every answer with what PeSIT Wizard answered.
//
// The recorder lost two things, which the test puts back:
//   - the CREATE's PGIs (recorded empty): rebuilt as PGI 9 {PI 11 = 0,
//     PI 12 = "CXPUSH"}, PGI 30 {PI 31 = 80, PI 32 = 1024}, PGI 40
//     {PI 41 = 0, PI 42 = 1024} and PGI 50 {PI 51}; PI 13, 16, 17 and 25
//     keep their recorded bytes;
//   - the DTF data (recorded header-only): each multi-article DTF (ID.SRC =
//     3) gets three 1024-byte articles and each DTFDA/DTFFA pair one
//     1024-byte article split 1006 + 18 bytes, so that the recorded
//     TRANS.END (1,048,576 bytes, 1024 articles) is right. With the
//     prefix, DTF + DTFDA fill one 4096-byte NSDU (PI 25 = 4096) and the
//     DTFFA travels alone or with the SYN or DTF.END that follows it.
//
// Every answer must then be byte-identical to the recording, except PI 28
// of ACK(TRANS.END): PeSIT Wizard answered 768, a counting bug (reference
// §1.5); we answer the correct 1024.
func TestReplayCXPush(t *testing.T) {
	recs := shareddata.PeSITRecording(t, "cx-push-1mb.raw")
	for _, framing := range []fpdu.Framing{fpdu.FramingPrefixed, fpdu.FramingRaw} {
		t.Run(framing.String(), func(t *testing.T) {
			ts := startServer(t, &Server{MaxEntitySize: 4096, newID: func() byte { return 0xE2 }})
			conn := ts.dial(t)
			defer conn.Close()
			_ = conn.SetDeadline(time.Now().Add(20 * time.Second))

			// Collect the server's answers.
			answers := make(chan [][]byte, 1)
			go func() {
				var got [][]byte
				rd := fpdu.NewReader(conn, framing)
				for {
					b, err := rd.Next()
					if err != nil {
						answers <- got
						return
					}
					got = append(got, append([]byte(nil), b...))
				}
			}()

			content := randomData(1<<20, 1024)
			off := 0
			article := func(n int) []byte { a := content[off : off+n]; off += n; return a }
			var pend [][]byte // FPDUs of the NSDU being built
			flush := func() {
				if len(pend) == 0 {
					return
				}
				var b []byte
				var err error
				if framing == fpdu.FramingRaw {
					for _, f := range pend {
						b = append(b, f...)
					}
				} else if b, err = fpdu.AppendNSDU(nil, framing, pend...); err != nil {
					t.Fatal(err)
				}
				if _, err := conn.Write(b); err != nil {
					t.Fatal(err)
				}
				pend = pend[:0]
			}
			var wantSent [][]byte
			for _, r := range recs {
				if r.Sent {
					wantSent = append(wantSent, r.FPDU)
					continue
				}
				h, err := fpdu.ParseHeader(r.FPDU)
				if err != nil {
					t.Fatal(err)
				}
				var f []byte
				switch h.Type {
				case fpdu.TypeCreate:
					f = rebuildCreate(t, r.FPDU)
				case fpdu.TypeDTF:
					if h.SrcID != 3 || len(r.FPDU) != 6 {
						t.Fatalf("unexpected DTF % x", r.FPDU)
					}
					f, _ = fpdu.AppendArticles(nil, h.DstID, article(1024), article(1024), article(1024))
				case fpdu.TypeDTFDA:
					f, _ = fpdu.AppendData(nil, fpdu.TypeDTFDA, h.DstID, article(1006))
				case fpdu.TypeDTFFA:
					f, _ = fpdu.AppendData(nil, fpdu.TypeDTFFA, h.DstID, article(18))
				default:
					f = r.FPDU
				}
				if f == nil {
					t.Fatalf("cannot rebuild %v", h.Type)
				}
				switch h.Type {
				case fpdu.TypeDTF:
					flush() // a DTFFA not followed by SYN travels alone
					pend = append(pend, f)
				case fpdu.TypeDTFDA:
					pend = append(pend, f)
					if n := len(pend[0]) + len(pend[1]); n != 4096 {
						t.Fatalf("NSDU of %d bytes", n)
					}
					flush()
				case fpdu.TypeDTFFA:
					pend = append(pend, f)
				case fpdu.TypeSyn, fpdu.TypeDTFEnd:
					pend = append(pend, f)
					flush()
				default:
					flush()
					pend = append(pend, f)
					flush()
				}
			}
			if off != len(content) {
				t.Fatalf("synthesised %d bytes", off)
			}
			var got [][]byte
			select {
			case got = <-answers:
			case <-time.After(20 * time.Second):
				t.Fatal("server did not finish")
			}
			if len(got) != len(wantSent) {
				t.Fatalf("server sent %d FPDUs, recording %d", len(got), len(wantSent))
			}
			syncs := 0
			for i := range got {
				g, w := got[i], wantSent[i]
				gh, _ := fpdu.ParseHeader(g)
				wh, _ := fpdu.ParseHeader(w)
				if gh.Type != wh.Type || gh.DstID != wh.DstID || gh.SrcID != wh.SrcID {
					t.Fatalf("answer %d: %v, recorded %v", i, gh, wh)
				}
				if gh.Type == fpdu.TypeAckSyn {
					syncs++
				}
				if gh.Type == fpdu.TypeAckTransEnd {
					want := append([]byte(nil), w...)
					want[len(want)-2] = 0x04 // PI 28 = 1024, not PeSIT Wizard's 768
					w = want
				}
				if !bytes.Equal(g, w) {
					t.Fatalf("answer %d %v:\n got % x\nwant % x", i, gh.Type, g, w)
				}
			}
			if syncs != 31 {
				t.Fatalf("%d ACK(SYN)", syncs)
			}
			ts.wait(t)
			if ts.errs[0] != nil {
				t.Fatalf("ServeConn: %v", ts.errs[0])
			}
			if fileSum(t, filepath.Join(ts.Root, "CXPUSH")) != sum(content) {
				t.Fatal("stored file differs from the synthesised data")
			}
		})
	}
}

// rebuildCreate restores the PGIs the recorder emptied in a CREATE.
func rebuildCreate(t *testing.T, b []byte) []byte {
	t.Helper()
	f, err := fpdu.DecodeOptions{Lenient: true}.Decode(b)
	if err != nil {
		t.Fatal(err)
	}
	var params []fpdu.Param
	for _, p := range f.Params {
		switch p.Code {
		case fpdu.PGIFileID:
			p = fpdu.PGI(fpdu.PGIFileID, fpdu.PIByte(fpdu.PIFileType, 0), fpdu.PIString(fpdu.PIFileName, "CXPUSH"))
		case fpdu.PGILogicalAttrs:
			p = fpdu.PGI(fpdu.PGILogicalAttrs, fpdu.PIByte(fpdu.PIArticleFormat, 0x80), fpdu.PIUint(fpdu.PIArticleLength, 1024, 2))
		case fpdu.PGIPhysicalAttrs:
			p = fpdu.PGI(fpdu.PGIPhysicalAttrs, fpdu.PIByte(fpdu.PISpaceUnit, 0), fpdu.PIUint(fpdu.PIMaxSpace, 1024, 2))
		case fpdu.PGIHistoricAttrs:
			p = fpdu.PGI(fpdu.PGIHistoricAttrs, fpdu.PIString(fpdu.PICreationDate, "260119012505"))
		}
		params = append(params, p)
	}
	out, err := fpdu.AppendFPDU(nil, f.Type, f.DstID, f.SrcID, params...)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// dedup drops the recorder's duplicate sent frames.
func dedup(recs []shareddata.PeSITRecord) []shareddata.PeSITRecord {
	var out []shareddata.PeSITRecord
	for i, r := range recs {
		if r.Sent && i > 0 && recs[i-1].Sent && bytes.Equal(recs[i-1].FPDU, r.FPDU) {
			continue
		}
		out = append(out, r)
	}
	return out
}

// TestReplayClient runs our Client against a fake Connect:Express that
// answers with the recorded frames, and compares what the Client sends
// with what PeSIT Wizard sent. Expected differences, normalised before the
// byte comparison:
//   - CREATE: we add PI 16 = 2 (binary, as C:X itself sends it) and PGI 50
//     carries today's date;
//   - TRANS.END: we send our counts (PI 27 = 12, PI 28 = 1), PeSIT Wizard
//     sent none;
//   - the DTF carrying "Hello PeSIT!" was not recorded: it must come
//     before DTF.END, as one mono-article DTF.
//
// PI 13 matches because the test passes the recorded id 0x8fcc.
func TestReplayClient(t *testing.T) {
	for _, name := range []string{"connect-release.raw", "simple-push.raw"} {
		t.Run(name, func(t *testing.T) {
			recs := dedup(shareddata.PeSITRecording(t, name))
			ln, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			defer ln.Close()
			fake := make(chan error, 1)
			go func() { fake <- fakeCX(ln, recs) }()

			conn, err := net.Dial("tcp", ln.Addr().String())
			if err != nil {
				t.Fatal(err)
			}
			c, err := NewClient(conn, ConnectOptions{
				RequesterID: "LOOP", ServerID: "CETOM1", Access: AccessWrite, NoSync: true, Timeout: 5 * time.Second,
			})
			if err != nil {
				t.Fatalf("NewClient: %v", err)
			}
			defer c.Close()
			if name == "simple-push.raw" {
				data := []byte("Hello PeSIT!")
				res, err := c.Send(context.Background(), "FILE", bytes.NewReader(data), int64(len(data)),
					TransferOptions{TransferID: 0x8fcc, ArticleSize: 1024})
				if err != nil {
					t.Fatalf("Send: %v", err)
				}
				if res.Bytes != 12 || res.Articles != 1 {
					t.Fatalf("result %+v", res)
				}
			}
			if err := c.Release(); err != nil {
				t.Fatalf("Release: %v", err)
			}
			if err := <-fake; err != nil {
				t.Fatal(err)
			}
		})
	}
}

// fakeCX plays the server side of a client recording: it checks each
// frame the client sends against the recording and answers with the
// recorded replies.
func fakeCX(ln net.Listener, recs []shareddata.PeSITRecord) error {
	conn, err := ln.Accept()
	if err != nil {
		return err
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(10 * time.Second))
	rd := fpdu.NewReader(conn, fpdu.FramingPrefixed)
	for i, r := range recs {
		if !r.Sent {
			b, err := fpdu.AppendNSDU(nil, fpdu.FramingPrefixed, r.FPDU)
			if err != nil {
				return err
			}
			if _, err := conn.Write(b); err != nil {
				return err
			}
			continue
		}
		got, err := rd.Next()
		if err != nil {
			return fmt.Errorf("frame %d: %w", i, err)
		}
		want, _ := fpdu.ParseHeader(r.FPDU)
		if want.Type == fpdu.TypeDTFEnd && fpdu.MakeType(got[2], got[3]) == fpdu.TypeDTF {
			// The unrecorded data FPDU.
			if !bytes.Equal(got, append([]byte{0, 18, 0, 0, 0x61, 0}, "Hello PeSIT!"...)) {
				return fmt.Errorf("data FPDU % x", got)
			}
			if got, err = rd.Next(); err != nil {
				return err
			}
		}
		norm, err := normalise(got, r.FPDU)
		if err != nil {
			return fmt.Errorf("frame %d: %w", i, err)
		}
		if !bytes.Equal(norm, r.FPDU) {
			return fmt.Errorf("frame %d %v:\n got % x\nwant % x", i, want.Type, got, r.FPDU)
		}
	}
	if _, err := rd.Next(); !errors.Is(err, io.EOF) {
		return fmt.Errorf("after the recording: %v", err)
	}
	return nil
}

// normalise removes the documented differences from a frame the client
// sent, taking PGI 50 from the recorded frame.
func normalise(got, recorded []byte) ([]byte, error) {
	f, err := fpdu.Decode(got)
	if err != nil {
		return nil, err
	}
	rf, err := fpdu.Decode(recorded)
	if err != nil {
		return nil, err
	}
	var params []fpdu.Param
	for _, p := range f.Params {
		switch {
		case f.Type == fpdu.TypeCreate && p.Code == fpdu.PIDataCode:
			if !bytes.Equal(p.Value, []byte{2}) {
				return nil, fmt.Errorf("PI 16 = % x", p.Value)
			}
			continue
		case f.Type == fpdu.TypeCreate && p.Code == fpdu.PGIHistoricAttrs:
			d, ok := f.Get(fpdu.PICreationDate)
			if !ok || len(d.Value) != 12 {
				return nil, errors.New("CREATE without a 12-character PI 51")
			}
			for _, rp := range rf.Params {
				if rp.Code == fpdu.PGIHistoricAttrs {
					p = rp
				}
			}
		case f.Type == fpdu.TypeTransEnd && (p.Code == fpdu.PIByteCount || p.Code == fpdu.PIArticleCount):
			if v, _ := p.Uint(); (p.Code == fpdu.PIByteCount && v != 12) || (p.Code == fpdu.PIArticleCount && v != 1) {
				return nil, fmt.Errorf("TRANS.END PI %d = %d", p.Code, v)
			}
			continue
		}
		params = append(params, p)
	}
	return fpdu.AppendFPDU(nil, f.Type, f.DstID, f.SrcID, params...)
}
