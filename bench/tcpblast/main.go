// Command tcpblast moves bytes over TCP (optionally TLS) as fast as it can,
// for the raw-TCP paths of bench/pesit.sh:
//
//	tcpblast sink -listen ADDR            # receives uploads
//	tcpblast source -listen ADDR -bytes N # serves downloads
//	tcpblast send -to ADDR -bytes N       # uploads, prints MB/s
//	tcpblast recv -to ADDR                # downloads, prints MB/s
//
// send and recv take -tls, -cert, -key and -insecure to go through a TLS
// listener with a client certificate.
package main

import (
	"crypto/tls"
	"flag"
	"fmt"
	"io"
	"log"
	"net"
	"os"
	"time"
)

const chunk = 256 << 10

func main() {
	if len(os.Args) < 2 {
		log.Fatal("usage: tcpblast sink|source|send|recv [flags]")
	}
	fs := flag.NewFlagSet(os.Args[1], flag.ExitOnError)
	listen := fs.String("listen", "127.0.0.1:0", "address to listen on")
	to := fs.String("to", "", "address to connect to")
	n := fs.Int64("bytes", 1<<30, "bytes to move")
	useTLS := fs.Bool("tls", false, "connect with TLS")
	cert := fs.String("cert", "", "client certificate (PEM)")
	key := fs.String("key", "", "client key (PEM)")
	_ = fs.Parse(os.Args[2:])
	switch os.Args[1] {
	case "sink":
		serve(*listen, func(c net.Conn) { _, _ = io.Copy(io.Discard, c) })
	case "source":
		serve(*listen, func(c net.Conn) { _, _ = io.CopyN(c, zeros{}, *n) })
	case "send", "recv":
		c := dial(*to, *useTLS, *cert, *key)
		start := time.Now()
		var moved int64
		var err error
		if os.Args[1] == "send" {
			moved, err = io.CopyBuffer(c, io.LimitReader(zeros{}, *n), make([]byte, chunk))
			if cw, ok := c.(interface{ CloseWrite() error }); ok {
				_ = cw.CloseWrite()
			}
			// Wait for the far end to close: the timing covers delivery.
			_, _ = io.Copy(io.Discard, c)
		} else {
			moved, err = io.CopyBuffer(io.Discard, c, make([]byte, chunk))
		}
		if err != nil {
			log.Fatal(err)
		}
		d := time.Since(start)
		fmt.Printf("bytes=%d seconds=%.3f mbps=%.1f\n", moved, d.Seconds(), float64(moved)/1e6/d.Seconds())
	default:
		log.Fatalf("unknown mode %q", os.Args[1])
	}
}

type zeros struct{}

func (zeros) Read(p []byte) (int, error) {
	clear(p)
	return len(p), nil
}

func serve(addr string, handle func(net.Conn)) {
	l, err := net.Listen("tcp", addr)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(l.Addr())
	for {
		c, err := l.Accept()
		if err != nil {
			log.Fatal(err)
		}
		go func() {
			defer c.Close()
			handle(c)
		}()
	}
}

func dial(addr string, useTLS bool, cert, key string) net.Conn {
	if !useTLS {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			log.Fatal(err)
		}
		return c
	}
	cfg := &tls.Config{InsecureSkipVerify: true}
	if cert != "" {
		pair, err := tls.LoadX509KeyPair(cert, key)
		if err != nil {
			log.Fatal(err)
		}
		cfg.Certificates = []tls.Certificate{pair}
	}
	c, err := tls.Dial("tcp", addr, cfg)
	if err != nil {
		log.Fatal(err)
	}
	return c
}
