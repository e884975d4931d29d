// Command flood reproduces the credential-free outage of the "hostile
// traffic" issue on loopback, and probes whether the listeners survived.
//
//	flood attack -targets 127.0.0.1:8443,127.0.0.1:5001 -conns 2000 -hold 20s
//	flood probe -pesit 127.0.0.1:6502 -pesits 127.0.0.1:5001 -https 127.0.0.1:8443 -sandbox DIR
//
// attack opens up to -conns connections to each target, from -sources
// loopback addresses (127.0.0.2 …), sends the first bytes of a TLS
// ClientHello (or of a PeSIT NSDU, -plain targets) and then nothing,
// holds them for -hold, and reports how many the server refused, closed
// during the hold, or left open. It only dials loopback addresses.
//
// probe checks that each listener still serves: a PeSIT CONNECT of the
// sandbox partner DEMO answered with ACONNECT (TCP and mTLS), and a TLS
// handshake on the HTTPS port. It prints one line per listener and exits
// 1 if one does not answer.
package main

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/bankedge/bankedge/modules/pesit/peer"
)

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: flood attack|probe [flags]")
		os.Exit(2)
	}
	switch os.Args[1] {
	case "attack":
		attack(os.Args[2:])
	case "probe":
		os.Exit(probe(os.Args[2:]))
	default:
		fmt.Fprintln(os.Stderr, "usage: flood attack|probe [flags]")
		os.Exit(2)
	}
}

// clientHelloStart is the record header and the first bytes of a
// ClientHello announcing 512 bytes that never come.
var clientHelloStart = []byte{0x16, 0x03, 0x01, 0x02, 0x00, 0x01, 0x00, 0x01, 0xfc, 0x03, 0x03}

// pesitStart is a PeSIT NSDU prefix announcing 100 bytes, and 2 of them.
var pesitStart = []byte{0x00, 0x64, 0x00, 0x64}

func loopbackOnly(addr string) error {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return err
	}
	if ip := net.ParseIP(host); ip == nil || !ip.IsLoopback() {
		return fmt.Errorf("%s is not a loopback address: this tool attacks loopback only", addr)
	}
	return nil
}

func attack(args []string) {
	fs := flag.NewFlagSet("attack", flag.ExitOnError)
	targets := fs.String("targets", "", "comma-separated host:port to attack with stalled TLS handshakes")
	plain := fs.String("plain", "", "comma-separated host:port to attack with stalled PeSIT NSDUs")
	conns := fs.Int("conns", 2000, "connections per target (at most 20000)")
	sources := fs.Int("sources", 200, "loopback source addresses, 127.0.0.2 upwards (at most 250)")
	hold := fs.Duration("hold", 20*time.Second, "how long the connections are held (at most 2m)")
	_ = fs.Parse(args)
	*conns, *sources, *hold = min(*conns, 20000), min(max(*sources, 1), 250), min(*hold, 2*time.Minute)
	type target struct {
		addr  string
		first []byte
	}
	var ts []target
	for _, list := range []struct {
		s     string
		first []byte
	}{{*targets, clientHelloStart}, {*plain, pesitStart}} {
		for _, a := range strings.Split(list.s, ",") {
			if a == "" {
				continue
			}
			if err := loopbackOnly(a); err != nil {
				fmt.Fprintln(os.Stderr, err)
				os.Exit(2)
			}
			ts = append(ts, target{a, list.first})
		}
	}
	end := time.Now().Add(*hold)
	var wg sync.WaitGroup
	for _, tg := range ts {
		var opened, refused, closedEarly, heldOpen atomic.Int64
		sem := make(chan struct{}, 64)
		var tw sync.WaitGroup
		for i := range *conns {
			sem <- struct{}{}
			tw.Add(1)
			go func() {
				defer tw.Done()
				src := net.IPv4(127, 0, 0, byte(2+i%*sources))
				d := net.Dialer{LocalAddr: &net.TCPAddr{IP: src}, Timeout: 2 * time.Second}
				c, err := d.Dial("tcp", tg.addr)
				<-sem
				if err != nil {
					refused.Add(1)
					return
				}
				opened.Add(1)
				defer c.Close()
				_, _ = c.Write(tg.first)
				_ = c.SetReadDeadline(end)
				_, err = io.Copy(io.Discard, c)
				var ne net.Error
				if errors.As(err, &ne) && ne.Timeout() {
					heldOpen.Add(1)
				} else {
					closedEarly.Add(1)
				}
			}()
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			tw.Wait()
			fmt.Printf("attack %-21s %6d connections: %6d refused at connect, %6d closed by the server within %s, %6d still open\n",
				tg.addr, *conns, refused.Load(), closedEarly.Load(), *hold, heldOpen.Load())
		}()
	}
	wg.Wait()
}

func probe(args []string) int {
	fs := flag.NewFlagSet("probe", flag.ExitOnError)
	pesit := fs.String("pesit", "", "PeSIT over TCP host:port")
	pesits := fs.String("pesits", "", "PeSIT over TLS host:port")
	https := fs.String("https", "", "HTTPS host:port (a handshake is enough)")
	sandbox := fs.String("sandbox", "sandbox", "the sandbox directory (DEMO's password, certificate and CA)")
	within := fs.Duration("within", 10*time.Second, "how long each listener has to answer")
	_ = fs.Parse(args)
	dir := filepath.Join(*sandbox, "pesit")
	pw, err := os.ReadFile(filepath.Join(dir, "demo-password"))
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	password := strings.TrimSpace(string(pw))
	caPEM, _ := os.ReadFile(filepath.Join(dir, "ca.pem"))
	roots := x509.NewCertPool()
	roots.AppendCertsFromPEM(caPEM)
	cert, err := tls.LoadX509KeyPair(filepath.Join(dir, "demo.pem"), filepath.Join(dir, "demo-key.pem"))
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	tlsCfg := &tls.Config{RootCAs: roots, ServerName: "localhost", Certificates: []tls.Certificate{cert}}
	pesitConnect := func(addr string, useTLS bool) error {
		d := net.Dialer{Timeout: 2 * time.Second}
		var conn net.Conn
		var err error
		if useTLS {
			conn, err = tls.DialWithDialer(&d, "tcp", addr, tlsCfg)
		} else {
			conn, err = d.Dial("tcp", addr)
		}
		if err != nil {
			return err
		}
		c, err := peer.NewClient(conn, peer.ConnectOptions{RequesterID: "DEMO", ServerID: "BANKEDGE", Password: password, Timeout: 3 * time.Second})
		if err != nil {
			conn.Close()
			return err
		}
		defer c.Close()
		return c.Release()
	}
	checks := []struct {
		name, addr string
		try        func() error
	}{
		{"PeSIT TCP", *pesit, func() error { return pesitConnect(*pesit, false) }},
		{"PeSIT TLS", *pesits, func() error { return pesitConnect(*pesits, true) }},
		{"HTTPS", *https, func() error {
			// Without a client certificate: a completed handshake or the
			// server's TLS alert both show that it accepts.
			c, err := tls.DialWithDialer(&net.Dialer{Timeout: 2 * time.Second}, "tcp", *https, &tls.Config{RootCAs: roots, ServerName: "localhost"})
			if err == nil {
				c.Close()
				return nil
			}
			if strings.Contains(err.Error(), "remote error") {
				return nil
			}
			return err
		}},
	}
	failed := 0
	for _, ck := range checks {
		if ck.addr == "" {
			continue
		}
		if err := loopbackOnly(ck.addr); err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 2
		}
		start := time.Now()
		var err error
		for deadline := start.Add(*within); ; time.Sleep(200 * time.Millisecond) {
			if err = ck.try(); err == nil || time.Now().After(deadline) {
				break
			}
		}
		if err != nil {
			failed++
			fmt.Printf("probe  %-9s %-21s DOES NOT ACCEPT (%v)\n", ck.name, ck.addr, err)
			continue
		}
		fmt.Printf("probe  %-9s %-21s accepts (answered in %s)\n", ck.name, ck.addr, time.Since(start).Round(time.Millisecond))
	}
	if failed > 0 {
		return 1
	}
	return 0
}
