package cluster

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/caddyserver/certmagic"
	"github.com/google/uuid"
	storageredis "github.com/pberkel/caddy-storage-redis"
)

// keyspace builds the Redis keys of one deployment (see the package
// documentation for the layout).
type keyspace struct {
	// base is "<prefix>:bankedge:".
	base string
}

func newKeyspace(prefix string) keyspace {
	if prefix == "" {
		return keyspace{base: "bankedge:"}
	}
	return keyspace{base: prefix + ":bankedge:"}
}

// replay is <prefix>:bankedge:replay:{<org>}:<request-id>, built with one
// allocation: it is on the path of every PSD2 request.
func (k keyspace) replay(orgID string, id uuid.UUID) string {
	org := tag(orgID)
	b := make([]byte, 0, len(k.base)+len("replay:{}:")+len(org)+36)
	b = append(b, k.base...)
	b = append(b, "replay:{"...)
	b = append(b, org...)
	b = append(b, "}:"...)
	var s [36]byte
	encodeUUID(s[:], id)
	b = append(b, s[:]...)
	return string(b)
}

func (k keyspace) sessions(partnerID string) string {
	return k.base + "sessions:{" + tag(partnerID) + "}"
}

func (k keyspace) failures(f FailureKey) string {
	return k.base + f.Scope + ":{" + tag(f.Subject) + "}"
}

func (k keyspace) events() string {
	return k.base + "events"
}

// tag makes an identifier safe inside a hash tag: '{' and '}' would end or
// move the tag, and '%' is the escape itself.
func tag(id string) string {
	if !strings.ContainsAny(id, "{}%") {
		return id
	}
	r := strings.NewReplacer("%", "%25", "{", "%7B", "}", "%7D")
	return r.Replace(id)
}

// encodeUUID writes the canonical text form of id, as uuid.UUID.String
// does, without allocating.
func encodeUUID(dst []byte, id uuid.UUID) {
	const hexdigits = "0123456789abcdef"
	j := 0
	for i, b := range id {
		if i == 4 || i == 6 || i == 8 || i == 10 {
			dst[j] = '-'
			j++
		}
		dst[j] = hexdigits[b>>4]
		dst[j+1] = hexdigits[b&0x0f]
		j += 2
	}
}

// redisIdentity names the Redis deployment and key namespace of a storage:
// configurations that agree on it share one engine. Credentials and TLS
// settings are not part of it, so that rotating a password in a reload keeps
// the engine (and the leases it renews); the engine adopts them instead.
func redisIdentity(rs *storageredis.RedisStorage) string {
	addrs := slices.Clone(rs.Address)
	slices.Sort(addrs)
	return fmt.Sprintf("redis\x00%s\x00%s\x00%s\x00%s\x00%s",
		rs.ClientType, strings.Join(addrs, ","), rs.MasterName, rs.DB, rs.KeyPrefix)
}

// sentinelOf returns the Sentinel settings of a storage in failover mode.
func sentinelOf(rs *storageredis.RedisStorage) *sentinelSettings {
	if rs.ClientType != "failover" {
		return nil
	}
	db, _ := strconv.Atoi(string(rs.DB)) // validated by the storage's provisioning
	return &sentinelSettings{
		masterName:       rs.MasterName,
		sentinelAddrs:    slices.Clone(rs.Address),
		sentinelPassword: rs.SentinelPassword,
		db:               db,
	}
}

// storageIdentity names any other storage, for the in-process engine.
func storageIdentity(s certmagic.Storage) string {
	if st, ok := s.(fmt.Stringer); ok {
		return fmt.Sprintf("%T\x00%s", s, st.String())
	}
	return fmt.Sprintf("%T", s)
}

// redisSettings digests the connection settings of a storage that are not
// part of its identity, without keeping them readable.
func redisSettings(rs *storageredis.RedisStorage) string {
	return fingerprint(rs.Username, rs.Password, rs.SentinelPassword,
		strconv.FormatBool(rs.TlsEnabled), strconv.FormatBool(rs.TlsInsecure),
		rs.TlsServerCertsPEM, rs.TlsServerCertsPath,
		strconv.FormatBool(rs.RouteByLatency), strconv.FormatBool(rs.RouteRandomly))
}

func fingerprint(parts ...string) string {
	h := sha256.New()
	for _, p := range parts {
		fmt.Fprintf(h, "%d:%s;", len(p), p)
	}
	return hex.EncodeToString(h.Sum(nil))
}
