// Package cluster is bankedge's fast shared state: the replay claims of PSD2
// requests, the connection leases behind PeSIT maxConnections, the counters
// of failed authentications, and change notifications (a partner changed, a
// certificate revoked) between the gateways of one deployment.
//
// # Selection
//
// [From] looks at the storage of the Caddy configuration. When it is
// caddy.storage.redis (github.com/pberkel/caddy-storage-redis), the state lives
// in that same Redis, reached with the storage's own connection settings
// (address, Cluster or Sentinel mode, database, credentials, TLS) read from
// the client that the storage exposes with GetClient; the user configures
// nothing else. With any other storage, the state is in process. Either way
// one engine serves every configuration that names the same storage, so the
// state outlives config reloads: a lease taken under the old configuration is
// renewed and released after the reload as before.
//
// The engine dials Redis with its own connection pool cloned from the
// storage's options, not with the storage's client itself, for two reasons:
// the storage closes its client when its configuration is unloaded, which
// would stop the renewal of leases held by sessions that outlive a graceful
// reload; and the storage's client waits up to 5 s per dial and 3 s per read
// with three retries, while every primitive here must fail within about a
// second (Timing.Op) so that a request is refused quickly, not held.
//
// # Key layout
//
// Every key starts with the storage's key_prefix (default "caddy"), so that
// two deployments with different prefixes share one Redis without seeing each
// other. Keys of one TPP or partner carry it as a Redis Cluster hash tag
// ({…}), so that they hash to one slot; '{', '}' and '%' in an identifier are
// percent-encoded so that the tag is always the whole identifier.
//
//	<prefix>:bankedge:replay:{<org>}:<request-id>  string "1", PX = replay window (SET NX PX)
//	<prefix>:bankedge:sessions:{<partner>}         sorted set: lease id -> expiry (Redis ms clock)
//	<prefix>:bankedge:authfail:{<partner>}         sorted set: failure id -> time (Redis µs clock)
//	<prefix>:bankedge:authfail-ip:{<ip>}           the same per source address
//	<prefix>:bankedge:<scope>:{<subject>}          the same for other FailureKey scopes
//	<prefix>:bankedge:events                       pub/sub channel of change notifications
//
// A lease id and a failure id are "<instance>:<sequence>", where instance is
// random per engine. Every key expires by itself: a replay key after its
// window, a session set one lease TTL after its last write, a failure set one
// window after its last failure. Times come from the Redis server (TIME), not
// from the gateways, so that clock skew between gateways changes nothing.
//
// # Failure counters
//
// A failure counter is a sorted set of failure times, not INCR with PEXPIRE:
// it counts the failures within the last window exactly (a sliding window),
// so an attacker cannot double its guesses around the boundary of a fixed
// window, and old failures leave the count one by one instead of all at once.
// The set is capped at MaxTrackedFailures entries (the newest kept), which
// bounds its memory whatever the attack; counts saturate there.
//
// # When Redis fails
//
// Every primitive returns an error wrapping [ErrUnavailable] within
// Timing.Op (the caller's context may shorten it), never blocks longer, and
// never answers "fresh" or "ok" without Redis having said so: callers fail
// closed. The engine logs one error line when a burst of failures starts and
// one info line when an operation started during the burst succeeds. Nothing
// needs a restart: the pool dials again on the next operation (go-redis
// retries a refused dial in the background once a second), lease renewal
// resumes, and the subscriber reconnects and hands every subscriber an
// [Event] with Resync set, meaning "messages may have been missed:
// invalidate everything".
//
// A lease whose release cannot reach Redis is retried by the renewer until it
// would have expired anyway; a lease that expired while Redis was away and
// whose session still lives is put back when Redis returns, so the count
// reflects the live sessions. A gateway killed with SIGKILL leaks its leases
// for at most Timing.LeaseTTL (30 s).
//
// The CA and the partner registry keep their records in the Redis storage
// itself; [State.GuardStorage] puts that storage behind the engine, so that
// its failures are ErrUnavailable too (the storage reports a failed read
// as a missing key: the guard asks Redis before it believes one), count in
// the same outage line, end within 2 s for reads, fail fast while an outage
// lasts, and so that a delete cannot leave a key that reads find and
// listings hide.
//
// A replay claim whose reply is lost after Redis stored it (the connection
// breaks between the two) counts the request id as used: a retry of the same
// request with the same X-Request-ID is then a replay, which is the safe
// side. Requests are never retried inside the engine.
package cluster
