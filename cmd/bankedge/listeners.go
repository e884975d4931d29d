package main

import (
	"cmp"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"slices"
	"sort"
	"strconv"
	"strings"
	"syscall"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
)

// listener is an address a configuration listens on.
type listener struct {
	// app is "http", "layer4" or "admin"; server is the server's name in
	// the configuration.
	app, server string
	// network is "tcp" or "unix"; addr is host:port (host empty for every
	// interface) or a socket path with its permission bits after "|".
	network, addr string
	port          string
	// tls is set when the listener speaks TLS first.
	tls bool
	// names are the host names the listener serves certificates for, as
	// far as the configuration tells (route hosts, SNI matchers,
	// default_sni).
	names []string
}

// dialAddr is where a client on this machine reaches the listener.
func (l listener) dialAddr() string {
	if l.network == "unix" {
		path, _, _ := strings.Cut(l.addr, "|")
		return path
	}
	host, port, _ := net.SplitHostPort(l.addr)
	if ip := net.ParseIP(host); host == "" || (ip != nil && ip.IsUnspecified()) {
		host = "127.0.0.1"
	}
	return net.JoinHostPort(host, port)
}

// String is how messages name the listener.
func (l listener) String() string {
	switch {
	case l.network == "unix":
		path, _, _ := strings.Cut(l.addr, "|")
		return "unix socket " + displayPath(path)
	case l.app == "http" && l.tls:
		return "https://" + l.hostForURL()
	case l.app == "http" || l.app == "admin":
		return "http://" + l.hostForURL()
	}
	return l.addr
}

func (l listener) hostForURL() string {
	host, port, _ := net.SplitHostPort(l.addr)
	if host == "" {
		host = "localhost"
		if len(l.names) > 0 && !strings.Contains(l.names[0], "*") {
			host = l.names[0]
		}
	}
	return net.JoinHostPort(host, port)
}

// configJSON is the part of a Caddy JSON configuration that tells where it
// listens.
type configJSON struct {
	Admin *struct {
		Disabled bool   `json:"disabled"`
		Listen   string `json:"listen"`
	} `json:"admin"`
	Apps struct {
		HTTP *struct {
			HTTPPort int `json:"http_port"`
			Servers  map[string]struct {
				Listen         []string          `json:"listen"`
				Routes         []json.RawMessage `json:"routes"`
				TLSPolicies    []json.RawMessage `json:"tls_connection_policies"`
				AutomaticHTTPS *struct {
					Disable bool     `json:"disable"`
					Skip    []string `json:"skip"`
				} `json:"automatic_https"`
			} `json:"servers"`
		} `json:"http"`
		Layer4 *struct {
			Servers map[string]struct {
				Listen []string `json:"listen"`
				Routes []struct {
					Handle []json.RawMessage `json:"handle"`
				} `json:"routes"`
			} `json:"servers"`
		} `json:"layer4"`
	} `json:"apps"`
}

// configListeners lists the addresses a JSON configuration listens on, the
// admin endpoint first, then the HTTP and layer4 servers by name.
func configListeners(cfg []byte) ([]listener, error) {
	var c configJSON
	if err := json.Unmarshal(cfg, &c); err != nil {
		return nil, fmt.Errorf("reading the configuration: %w", err)
	}
	var out []listener
	if c.Admin == nil || !c.Admin.Disabled {
		addr := caddy.DefaultAdminListen
		if c.Admin != nil && c.Admin.Listen != "" {
			addr = c.Admin.Listen
		}
		if l, err := newListener("admin", "", addr); err == nil {
			out = append(out, l)
		}
	}
	if h := c.Apps.HTTP; h != nil {
		httpPort := strconv.Itoa(cmp.Or(h.HTTPPort, caddyhttp.DefaultHTTPPort))
		for _, name := range sortedKeys(h.Servers) {
			srv := h.Servers[name]
			names := hostNames(srv.Routes, srv.TLSPolicies)
			for _, addr := range srv.Listen {
				l, err := newListener("http", name, addr)
				if err != nil || l.network != "tcp" {
					continue
				}
				l.names = names
				// TLS when the server has TLS policies (the Caddyfile makes
				// them for tls blocks), or serves names that automatic HTTPS
				// does not skip on a port other than the HTTP port.
				auto := srv.AutomaticHTTPS
				served := slices.DeleteFunc(slices.Clone(names), func(n string) bool { return auto != nil && slices.Contains(auto.Skip, n) })
				l.tls = len(srv.TLSPolicies) > 0 || (len(served) > 0 && l.port != httpPort && (auto == nil || !auto.Disable))
				out = append(out, l)
			}
		}
	}
	if l4 := c.Apps.Layer4; l4 != nil {
		for _, name := range sortedKeys(l4.Servers) {
			srv := l4.Servers[name]
			var tls bool
			var names []string
			for _, r := range srv.Routes {
				for _, h := range r.Handle {
					var hd struct {
						Handler  string `json:"handler"`
						Policies []struct {
							DefaultSNI string `json:"default_sni"`
						} `json:"connection_policies"`
					}
					if json.Unmarshal(h, &hd) == nil && hd.Handler == "tls" {
						tls = true
						for _, p := range hd.Policies {
							if p.DefaultSNI != "" {
								names = append(names, p.DefaultSNI)
							}
						}
					}
				}
			}
			for _, addr := range srv.Listen {
				l, err := newListener("layer4", name, addr)
				if err != nil || l.network != "tcp" {
					continue
				}
				l.tls, l.names = tls, names
				out = append(out, l)
			}
		}
	}
	return out, nil
}

// newListener parses a Caddy listen address ("host:port", "tcp/:8443",
// "guard+tcp/:6502", "unix//path|0600"); of a port range it keeps the first
// port.
func newListener(app, server, addr string) (listener, error) {
	na, err := caddy.ParseNetworkAddress(addr)
	if err != nil {
		return listener{}, err
	}
	l := listener{app: app, server: server}
	switch {
	case caddy.IsUnixNetwork(na.Network):
		l.network, l.addr = "unix", na.Host
	case strings.HasPrefix(strings.TrimPrefix(na.Network, "guard+"), "tcp"):
		l.network = "tcp"
		l.port = strconv.FormatUint(uint64(na.StartPort), 10)
		l.addr = net.JoinHostPort(na.Host, l.port)
	default:
		l.network = na.Network
		l.addr = addr
	}
	return l, nil
}

// hostNames collects the host names of HTTP routes and TLS policies.
func hostNames(routes, policies []json.RawMessage) []string {
	var names []string
	add := func(n string) {
		if n != "" && !slices.Contains(names, n) {
			names = append(names, n)
		}
	}
	for _, r := range routes {
		var route struct {
			Match []struct {
				Host []string `json:"host"`
			} `json:"match"`
		}
		if json.Unmarshal(r, &route) == nil {
			for _, m := range route.Match {
				for _, h := range m.Host {
					add(h)
				}
			}
		}
	}
	for _, p := range policies {
		var pol struct {
			Match struct {
				SNI []string `json:"sni"`
			} `json:"match"`
			DefaultSNI string `json:"default_sni"`
		}
		if json.Unmarshal(p, &pol) == nil {
			for _, n := range pol.Match.SNI {
				add(n)
			}
			add(pol.DefaultSNI)
		}
	}
	return names
}

// probePort reports whether a TCP address can be listened on now. When it
// cannot, the error says why and, where the system tells, which process
// holds it.
func probePort(addr string) error {
	l, err := net.Listen("tcp", addr)
	if err == nil {
		return l.Close()
	}
	if errors.Is(err, syscall.EADDRINUSE) {
		_, port, _ := net.SplitHostPort(addr)
		if holder := portHolder(port); holder != "" {
			return fmt.Errorf("already in use by %s", holder)
		}
		return errors.New("already in use by another process")
	}
	return err
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
