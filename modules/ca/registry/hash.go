package registry

import (
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"golang.org/x/crypto/argon2"
	"golang.org/x/crypto/bcrypt"
)

// argonParams are the argon2id cost parameters of newly hashed passwords.
type argonParams struct {
	memory  uint32 // KiB
	time    uint32
	threads uint8
}

// defaultArgon is OWASP's recommended argon2id setting (19 MiB, 2 passes,
// 1 lane): strong enough for stored secrets while keeping one verification
// in the tens of milliseconds, which matters because the PeSIT gateway
// verifies on connection.
var defaultArgon = argonParams{memory: 19456, time: 2, threads: 1}

const (
	argonSaltLen = 16
	argonKeyLen  = 32

	// Bounds on the parameters of stored hashes. Imported hashes come from
	// operators, but a typo such as m=1945600 would turn every connection
	// into a 2 GiB allocation, so absurd values are refused up front.
	maxArgonMemory  = 1 << 20 // KiB, 1 GiB
	maxArgonTime    = 16
	maxArgonThreads = 16
	maxBcryptCost   = 15

	// Floors on imported hashes: below them a stolen record is cheap to
	// crack. bcrypt: OWASP's minimum cost 10. argon2id: OWASP's weakest
	// recommended setting is m=7 MiB with t=5, and every recommended one
	// spends at least that memory × passes.
	minBcryptCost    = 10
	minArgonMemory   = 7168     // KiB
	minArgonMemoryXT = 7168 * 5 // KiB × passes

	// bcryptMaxPassword is bcrypt's input limit: longer inputs would be
	// truncated, making distinct passwords equal, so they never match.
	bcryptMaxPassword = 72
)

var errBadHash = errors.New("unrecognised password hash format")

// hashPassword returns the argon2id PHC string of password with a fresh
// random salt.
func hashPassword(password string, p argonParams) (string, error) {
	salt := make([]byte, argonSaltLen)
	if _, err := rand.Read(salt); err != nil {
		return "", fmt.Errorf("generating password salt: %w", err)
	}
	key := argon2.IDKey([]byte(password), salt, p.time, p.memory, p.threads, argonKeyLen)
	return fmt.Sprintf("$argon2id$v=%d$m=%d,t=%d,p=%d$%s$%s",
		argon2.Version, p.memory, p.time, p.threads,
		base64.RawStdEncoding.EncodeToString(salt),
		base64.RawStdEncoding.EncodeToString(key)), nil
}

// checkHashFormat reports whether hash is a supported password hash (an
// argon2id PHC string or a bcrypt hash) with sane cost parameters, neither
// too weak to resist cracking nor too heavy to verify, without verifying
// any password. It checks imported hashes.
func checkHashFormat(hash string) error {
	switch {
	case strings.HasPrefix(hash, "$argon2id$"):
		h, err := parseArgon2id(hash)
		if err != nil {
			return err
		}
		if p := h.params; p.memory < minArgonMemory || uint64(p.memory)*uint64(p.time) < minArgonMemoryXT {
			return fmt.Errorf("argon2id parameters m=%d,t=%d are too weak: at least m=%d (KiB) and m×t=%d, e.g. m=19456,t=2",
				p.memory, p.time, minArgonMemory, minArgonMemoryXT)
		}
		return nil
	case isBcrypt(hash):
		cost, err := bcrypt.Cost([]byte(hash))
		if err != nil {
			return errBadHash
		}
		if cost > maxBcryptCost {
			return fmt.Errorf("bcrypt cost %d exceeds %d", cost, maxBcryptCost)
		}
		if cost < minBcryptCost {
			return fmt.Errorf("bcrypt cost %d is too weak: at least %d", cost, minBcryptCost)
		}
		return nil
	}
	return errBadHash
}

func isBcrypt(hash string) bool {
	return strings.HasPrefix(hash, "$2a$") || strings.HasPrefix(hash, "$2b$") || strings.HasPrefix(hash, "$2y$")
}

type argonHash struct {
	params argonParams
	salt   []byte
	key    []byte
}

// parseArgon2id parses "$argon2id$v=19$m=..,t=..,p=..$salt$key" (unpadded
// standard base64, as the PHC string format specifies).
func parseArgon2id(hash string) (argonHash, error) {
	var h argonHash
	parts := strings.Split(hash, "$")
	// "", "argon2id", "v=19", "m=..,t=..,p=..", salt, key
	if len(parts) != 6 || parts[1] != "argon2id" {
		return h, errBadHash
	}
	if parts[2] != "v="+strconv.Itoa(argon2.Version) {
		return h, fmt.Errorf("unsupported argon2id version %q", parts[2])
	}
	seen := 0
	for _, kv := range strings.Split(parts[3], ",") {
		name, val, ok := strings.Cut(kv, "=")
		if !ok {
			return h, errBadHash
		}
		n, err := strconv.ParseUint(val, 10, 32)
		if err != nil {
			return h, errBadHash
		}
		switch name {
		case "m":
			h.params.memory = uint32(n)
			seen |= 1
		case "t":
			h.params.time = uint32(n)
			seen |= 2
		case "p":
			if n > 255 {
				return h, errBadHash
			}
			h.params.threads = uint8(n)
			seen |= 4
		default:
			return h, errBadHash
		}
	}
	if seen != 7 {
		return h, errBadHash
	}
	p := h.params
	if p.time < 1 || p.time > maxArgonTime || p.threads < 1 || p.threads > maxArgonThreads ||
		p.memory < 8*uint32(p.threads) || p.memory > maxArgonMemory {
		return h, fmt.Errorf("argon2id parameters m=%d,t=%d,p=%d out of range", p.memory, p.time, p.threads)
	}
	var err error
	if h.salt, err = base64.RawStdEncoding.DecodeString(parts[4]); err != nil || len(h.salt) < 8 {
		return h, errBadHash
	}
	if h.key, err = base64.RawStdEncoding.DecodeString(parts[5]); err != nil || len(h.key) < 16 || len(h.key) > 64 {
		return h, errBadHash
	}
	return h, nil
}

// verifyPassword reports whether password matches hash. The comparison of
// derived keys is constant-time; bcrypt's own comparison is too.
func verifyPassword(hash, password string) (bool, error) {
	switch {
	case strings.HasPrefix(hash, "$argon2id$"):
		h, err := parseArgon2id(hash)
		if err != nil {
			return false, err
		}
		key := argon2.IDKey([]byte(password), h.salt, h.params.time, h.params.memory, h.params.threads, uint32(len(h.key)))
		return subtle.ConstantTimeCompare(key, h.key) == 1, nil
	case isBcrypt(hash):
		if len(password) > bcryptMaxPassword {
			return false, nil
		}
		err := bcrypt.CompareHashAndPassword([]byte(hash), []byte(password))
		if err == nil {
			return true, nil
		}
		if errors.Is(err, bcrypt.ErrMismatchedHashAndPassword) {
			return false, nil
		}
		return false, errBadHash
	}
	return false, errBadHash
}
