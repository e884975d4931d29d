package main

import (
	"bufio"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/caddyserver/caddy/v2/modules/caddyhttp/caddyauth"
	"golang.org/x/crypto/bcrypt"

	"github.com/bankedge/bankedge/modules/ca/registry"
)

// The variables of secrets.env, which Caddyfile.example reads.
const (
	envCAPassword       = "BANKEDGE_CA_PASSWORD"
	envAdminHash        = "BANKEDGE_ADMIN_PASSWORD_HASH"
	envDemoPassword     = "BANKEDGE_DEMO_PARTNER_PASSWORD"
	envUpstreamPassword = "BANKEDGE_UPSTREAM_PESIT_PASSWORD"
)

// sandboxSecret is a variable of secrets.env: how to check a value and how
// to make one.
type sandboxSecret struct {
	name  string
	check func(string) error
	make  func(dir string) (string, error)
}

var sandboxSecrets = []sandboxSecret{
	{envCAPassword, checkNotEmpty, func(string) (string, error) { return randomHex(24) }},
	{envAdminHash, checkBcryptHash, makeAdminPassword},
	// PeSIT passwords travel in PI 5, which carries 8 characters.
	{envDemoPassword, checkPeSITPassword, func(dir string) (string, error) {
		pw, err := randomAlnum(registry.LegacyPasswordLength)
		if err != nil {
			return "", err
		}
		return pw, writeFileAtomic(filepath.Join(dir, "pesit", "demo-password"), []byte(pw+"\n"), 0o600)
	}},
	{envUpstreamPassword, checkPeSITPassword, func(string) (string, error) { return randomAlnum(registry.LegacyPasswordLength) }},
}

// adminBcryptCost is the cost of the fake hash that Caddy's basic_auth
// compares an unknown user's password with: hashing the admin password at
// the same cost makes "wrong password" and "unknown user" take as long, so
// that the timing does not tell which users exist.
func adminBcryptCost() int {
	cost, err := bcrypt.Cost(caddyauth.BcryptHash{}.FakeHash())
	if err != nil {
		// Caddy's fake hash is a constant; this cannot happen.
		panic(err)
	}
	return cost
}

// makeAdminPassword writes a random admin password to dir/admin-password
// and returns its bcrypt hash.
func makeAdminPassword(dir string) (string, error) {
	pw, err := randomHex(12)
	if err != nil {
		return "", err
	}
	hash, err := bcrypt.GenerateFromPassword([]byte(pw), adminBcryptCost())
	if err != nil {
		return "", err
	}
	return string(hash), writeFileAtomic(filepath.Join(dir, "admin-password"), []byte(pw+"\n"), 0o600)
}

func checkNotEmpty(v string) error {
	if v == "" {
		return errors.New("is empty")
	}
	return nil
}

func checkBcryptHash(v string) error {
	if _, err := bcrypt.Cost([]byte(v)); err != nil {
		return errors.New("is not a bcrypt hash: make one with `bankedge hash-password --plaintext '…'`")
	}
	return nil
}

// checkPeSITPassword applies the rules of a legacy PeSIT password (the
// registry's pesitLegacyPassword): 1 to 8 printable ASCII characters, no
// trailing space.
func checkPeSITPassword(v string) error {
	n := registry.LegacyPasswordLength
	if v == "" || len(v) > n {
		return fmt.Errorf("must be 1 to %d characters, because PeSIT's PI 5 carries %d (it has %d)", n, n, len(v))
	}
	for i := 0; i < len(v); i++ {
		if v[i] < 0x20 || v[i] > 0x7e {
			return errors.New("must be printable ASCII")
		}
	}
	if strings.HasSuffix(v, " ") {
		return errors.New("must not end with a space, because PeSIT pads PI 5 with spaces")
	}
	return nil
}

// secretsFile is the content of secrets.env.
type secretsFile struct {
	path   string
	values map[string]string
	// existed is set when the file was there before this start.
	existed bool
	// fromEnv holds the variables that the environment set before the
	// sandbox read the file.
	fromEnv map[string]bool
	// rewrite is set when the file must be written again: values are
	// missing, unquoted (from an older bankedge) or upgraded.
	rewrite bool
	// adoptedFrom is the directory of another sandbox whose secrets.env
	// gave the variables in adopted (sandbox --envfile).
	adoptedFrom string
	adopted     map[string]bool
}

// secretsFileName is the sandbox's secrets file in its directory.
const secretsFileName = "secrets.env"

// readSecrets reads dir/secrets.env, if there is one, without writing
// anything, and checks every variable the sandbox needs, from the
// environment (which wins) or the file. Missing variables are not an error:
// they are made on start.
func readSecrets(dir string) (*secretsFile, error) {
	sf := &secretsFile{path: filepath.Join(dir, secretsFileName), values: map[string]string{}, fromEnv: map[string]bool{}}
	data, err := os.ReadFile(sf.path)
	switch {
	case errors.Is(err, fs.ErrNotExist):
	case err != nil:
		return nil, err
	default:
		sf.existed = true
		quoted, err := parseSecrets(string(data), sf.values)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", sf.path, err)
		}
		sf.rewrite = !quoted
	}
	var problems []string
	for _, sec := range sandboxSecrets {
		v, fromEnv := os.LookupEnv(sec.name)
		sf.fromEnv[sec.name] = fromEnv
		where := "the environment"
		if !fromEnv {
			var ok bool
			if v, ok = sf.values[sec.name]; !ok {
				sf.rewrite = true
				continue
			}
			where = sf.path
		}
		if err := sec.check(v); err != nil {
			problems = append(problems, fmt.Sprintf("%s (from %s) %v", sec.name, where, err))
		}
	}
	if len(problems) > 0 {
		return nil, errors.New(strings.Join(problems, "; "))
	}
	return sf, nil
}

// parseSecrets reads NAME=value lines, the value bare or in single or
// double quotes (Caddy's --envfile format, which a shell can source), into
// values. It reports whether every value was quoted.
func parseSecrets(data string, values map[string]string) (quoted bool, err error) {
	quoted = true
	sc := bufio.NewScanner(strings.NewReader(data))
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		k, v, ok := strings.Cut(strings.TrimPrefix(line, "export "), "=")
		if !ok {
			return false, fmt.Errorf("line %q is not NAME=value", line)
		}
		if len(v) >= 2 && (v[0] == '\'' || v[0] == '"') && v[len(v)-1] == v[0] {
			v = v[1 : len(v)-1]
		} else {
			quoted = false
		}
		values[k] = v
	}
	return quoted, sc.Err()
}

// complete makes the variables that neither the environment nor the file
// has, upgrades an admin hash made at a lower cost than Caddy's fake hash
// (the password is in dir/admin-password), and writes the file when
// anything changed. It returns the names of the variables it made.
func (sf *secretsFile) complete(dir string) ([]string, error) {
	var made []string
	for _, sec := range sandboxSecrets {
		if _, ok := os.LookupEnv(sec.name); ok {
			continue
		}
		if _, ok := sf.values[sec.name]; ok {
			continue
		}
		v, err := sec.make(dir)
		if err != nil {
			return nil, fmt.Errorf("making %s: %w", sec.name, err)
		}
		sf.values[sec.name] = v
		made = append(made, sec.name)
	}
	if _, set := os.LookupEnv(envAdminHash); !set {
		upgraded, err := upgradeAdminHash(dir, sf.values[envAdminHash])
		if err != nil {
			return nil, err
		}
		if upgraded != "" {
			sf.values[envAdminHash] = upgraded
			sf.rewrite = true
		}
	}
	if sf.rewrite || len(made) > 0 {
		if err := writeFileAtomic(sf.path, []byte(sf.format()), 0o600); err != nil {
			return nil, err
		}
	}
	return made, nil
}

// export sets the file's variables in the environment where they are not
// set already, for the configuration's {env.*} placeholders.
func (sf *secretsFile) export() {
	for k, v := range sf.values {
		if _, set := os.LookupEnv(k); !set {
			os.Setenv(k, v)
		}
	}
}

// upgradeAdminHash returns a new hash of the password in dir/admin-password
// when hash is a bcrypt hash of it at a lower cost than Caddy's fake hash,
// and "" when nothing is to be done.
func upgradeAdminHash(dir, hash string) (string, error) {
	cost, err := bcrypt.Cost([]byte(hash))
	if err != nil || cost >= adminBcryptCost() {
		return "", nil
	}
	b, err := os.ReadFile(filepath.Join(dir, "admin-password"))
	if err != nil {
		return "", nil
	}
	pw := strings.TrimSpace(string(b))
	if bcrypt.CompareHashAndPassword([]byte(hash), []byte(pw)) != nil {
		return "", nil
	}
	h, err := bcrypt.GenerateFromPassword([]byte(pw), adminBcryptCost())
	return string(h), err
}

// format writes the file so that Caddy's --envfile and a POSIX shell's
// "." read the same values: single quotes keep a shell from expanding the
// "$" of the bcrypt hash, and no value holds a quote or a "#".
func (sf *secretsFile) format() string {
	var b strings.Builder
	b.WriteString("# bankedge sandbox secrets, made on first start. Keep this file: the CA key\n" +
		"# is encrypted with BANKEDGE_CA_PASSWORD. Read it with\n" +
		"#   bankedge run --config Caddyfile.example --envfile sandbox/secrets.env\n" +
		"# or, in a shell, with: set -a; . sandbox/secrets.env; set +a\n")
	for _, sec := range sandboxSecrets {
		if v, ok := sf.values[sec.name]; ok {
			b.WriteString(sec.name + "='" + v + "'\n")
		}
	}
	return b.String()
}

// writeFileAtomic writes a file through a temporary file in the same
// directory, so that a reader sees the old content or the new one.
func writeFileAtomic(path string, data []byte, perm os.FileMode) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return err
	}
	f, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return err
	}
	tmp := f.Name()
	_, err = f.Write(data)
	if err == nil {
		err = f.Chmod(perm)
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, path)
	}
	if err != nil {
		os.Remove(tmp)
	}
	return err
}

// randomAlnum returns n random letters and digits, without the ones that
// are easily confused (0/O, 1/l/I).
func randomAlnum(n int) (string, error) {
	const chars = "ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz23456789"
	// Rejection sampling keeps every character equally likely.
	const limit = 256 - 256%len(chars)
	out := make([]byte, 0, n)
	b := make([]byte, 2*n)
	for len(out) < n {
		if _, err := rand.Read(b); err != nil {
			return "", err
		}
		for _, c := range b {
			if int(c) < limit && len(out) < n {
				out = append(out, chars[int(c)%len(chars)])
			}
		}
	}
	return string(out), nil
}

func randomHex(n int) (string, error) {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		return "", err
	}
	return hex.EncodeToString(b), nil
}
