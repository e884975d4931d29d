package main

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// readmeCommand is a shell command of a README block, with what the README
// says it prints: lines "# → exit status N" and "# → text" (where "…"
// stands for anything) right after it.
type readmeCommand struct {
	text       string
	line       int
	wantStatus int
	wantOutput []string
}

// readmeBlock is a ```sh block of the README and the section it is in.
type readmeBlock struct {
	section  string
	line     int
	commands []readmeCommand
}

// readmeBlocks reads the ```sh blocks of a Markdown file, in order.
func readmeBlocks(t *testing.T, path string) []readmeBlock {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var blocks []readmeBlock
	var cur *readmeBlock
	var pending strings.Builder
	pendingLine := 0
	section := ""
	sc := bufio.NewScanner(strings.NewReader(string(data)))
	for n := 1; sc.Scan(); n++ {
		line := sc.Text()
		switch {
		case cur == nil && strings.HasPrefix(line, "#"):
			section = strings.TrimSpace(strings.TrimLeft(line, "#"))
		case cur == nil && line == "```sh":
			blocks = append(blocks, readmeBlock{section: section, line: n})
			cur = &blocks[len(blocks)-1]
		case cur == nil:
		case line == "```":
			if pending.Len() > 0 {
				t.Fatalf("README.md:%d: the block ends inside a command", n)
			}
			cur = nil
		case pending.Len() == 0 && strings.HasPrefix(strings.TrimSpace(line), "# → "):
			if len(cur.commands) == 0 {
				t.Fatalf("README.md:%d: an expected output before any command", n)
			}
			c := &cur.commands[len(cur.commands)-1]
			want := strings.TrimPrefix(strings.TrimSpace(line), "# → ")
			if s, ok := strings.CutPrefix(want, "exit status "); ok {
				if c.wantStatus, err = strconv.Atoi(s); err != nil {
					t.Fatalf("README.md:%d: %q is not an exit status", n, s)
				}
			} else {
				c.wantOutput = append(c.wantOutput, want)
			}
		case pending.Len() == 0 && (strings.TrimSpace(line) == "" || strings.HasPrefix(strings.TrimSpace(line), "#")):
		default:
			if pending.Len() == 0 {
				pendingLine = n
			}
			pending.WriteString(line + "\n")
			if !strings.HasSuffix(line, "\\") {
				cur.commands = append(cur.commands, readmeCommand{text: strings.TrimSuffix(pending.String(), "\n"), line: pendingLine})
				pending.Reset()
			}
		}
	}
	return blocks
}

// readmeRunner runs README commands in a working directory, as a reader
// would in a fresh clone, with the sandbox's ports moved to free ones.
type readmeRunner struct {
	t     *testing.T
	dir   string
	env   []string
	ports map[string]string
	// server is the running server and serverExited closes when it ends;
	// outputs are the outputs of every server started.
	server       *exec.Cmd
	serverExited chan struct{}
	outputs      []*syncBuffer
}

var hostPort = regexp.MustCompile(`\b(localhost|127\.0\.0\.1):(\d+)\b`)

// rewrite makes a README command run here: the test binary stands for
// "go run ./cmd/bankedge" and a built bankedge, and the default ports are
// replaced by this run's.
func (r *readmeRunner) rewrite(cmd string) string {
	cmd = strings.ReplaceAll(cmd, "go run ./cmd/bankedge", `"$BANKEDGE_BIN"`)
	cmd = regexp.MustCompile(`go build -o (\S+) \./cmd/bankedge`).ReplaceAllString(cmd, `cp "$$BANKEDGE_BIN" ${1}`)
	return hostPort.ReplaceAllStringFunc(cmd, func(m string) string {
		sub := hostPort.FindStringSubmatch(m)
		if p, ok := r.ports[sub[2]]; ok {
			return sub[1] + ":" + p
		}
		return m
	})
}

// startServer runs a long-running README command (the sandbox, or bankedge
// run) in the background, after stopping the one before, and waits until it
// says it is ready.
func (r *readmeRunner) startServer(c readmeCommand, ready string) {
	r.t.Helper()
	r.stopServer()
	out := new(syncBuffer)
	r.outputs = append(r.outputs, out)
	cmd := exec.Command("bash", "-c", "exec "+r.rewrite(c.text))
	cmd.Dir, cmd.Env = r.dir, r.env
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		r.t.Fatal(err)
	}
	exited := make(chan struct{})
	go func() { _ = cmd.Wait(); close(exited) }()
	r.server, r.serverExited = cmd, exited
	deadline := time.After(90 * time.Second)
	for !strings.Contains(out.String(), ready) {
		select {
		case <-exited:
			r.t.Fatalf("README.md:%d: %s exited:\n%s", c.line, c.text, out.String())
		case <-deadline:
			r.t.Fatalf("README.md:%d: %s did not print %q:\n%s", c.line, c.text, ready, out.String())
		case <-time.After(50 * time.Millisecond):
		}
	}
}

func (r *readmeRunner) stopServer() {
	if r.server == nil {
		return
	}
	_ = r.server.Process.Signal(syscall.SIGINT)
	select {
	case <-r.serverExited:
	case <-time.After(20 * time.Second):
		_ = r.server.Process.Kill()
		<-r.serverExited
	}
	r.server = nil
}

// runBlock runs the commands of a block in one shell, in order, stopping at
// the first whose exit status is not the one the README shows, and checks
// the outputs the README shows.
func (r *readmeRunner) runBlock(b readmeBlock) {
	r.t.Helper()
	tmp := r.t.TempDir()
	var script strings.Builder
	script.WriteString("cd " + strconv.Quote(r.dir) + "\n")
	for i, c := range b.commands {
		fmt.Fprintf(&script, "{ %s\n} >%q 2>&1\nrc=$?\necho $rc >%q\n[ $rc -eq %d ] || exit 0\n",
			r.rewrite(c.text), filepath.Join(tmp, fmt.Sprint(i, ".out")), filepath.Join(tmp, fmt.Sprint(i, ".rc")), c.wantStatus)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	sh := exec.CommandContext(ctx, "bash", "-c", script.String())
	sh.Dir, sh.Env = r.dir, r.env
	if out, err := sh.CombinedOutput(); err != nil {
		r.t.Fatalf("README.md:%d (%s): the block did not run: %v\n%s", b.line, b.section, err, out)
	}
	for i, c := range b.commands {
		rcText, err := os.ReadFile(filepath.Join(tmp, fmt.Sprint(i, ".rc")))
		if err != nil {
			r.t.Fatalf("README.md:%d: not run", c.line)
		}
		out, _ := os.ReadFile(filepath.Join(tmp, fmt.Sprint(i, ".out")))
		rc, _ := strconv.Atoi(strings.TrimSpace(string(rcText)))
		if rc != c.wantStatus {
			r.t.Fatalf("README.md:%d (%s): exit status %d, the README shows %d:\n%s\n--- output:\n%s", c.line, b.section, rc, c.wantStatus, c.text, out)
		}
		for _, want := range c.wantOutput {
			if !containsInOrder(string(out), want) {
				r.t.Fatalf("README.md:%d (%s): the output lacks %q:\n%s\n--- output:\n%s", c.line, b.section, want, c.text, out)
			}
		}
	}
}

// containsInOrder reports whether s holds the parts of want between "…",
// in order.
func containsInOrder(s, want string) bool {
	for _, part := range strings.Split(want, "…") {
		part = strings.TrimSpace(part)
		i := strings.Index(s, part)
		if i < 0 {
			return false
		}
		s = s[i+len(part):]
	}
	return true
}

// TestReadme runs the README's shell blocks in order, in a fresh
// directory, as a reader pasting them would: the sandbox, the TPP, admin
// and PeSIT examples, serving the example yourself, and the build. Blocks
// that build with tools other than Go's test binary (xcaddy) or run the
// test suite are skipped.
func TestReadme(t *testing.T) {
	t.Parallel()
	for _, tool := range []string{"bash", "curl", "cmp"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("%s is not installed: the README's commands need it", tool)
		}
	}
	dir := t.TempDir()
	example, err := os.ReadFile(filepath.Join("..", "..", "Caddyfile.example"))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "Caddyfile.example"), example, 0o644); err != nil {
		t.Fatal(err)
	}
	r := &readmeRunner{t: t, dir: dir, ports: map[string]string{}}
	r.env = append(os.Environ(), "BANKEDGE_TEST_MAIN=1", raceNoExitSleep(), "BANKEDGE_BIN="+testBinary(t),
		"XDG_DATA_HOME="+filepath.Join(dir, ".xdg"), "XDG_CONFIG_HOME="+filepath.Join(dir, ".xdg"))
	for _, p := range sandboxPorts {
		port := freePort(t)
		r.ports[p.def] = port
		r.env = append(r.env, p.env+"="+port)
	}
	if raceEnabled {
		r.env = append(r.env, cheapAdminPassword(t, filepath.Join(dir, "sandbox")))
	}
	defer func() {
		r.stopServer()
		if t.Failed() {
			for i, out := range r.outputs {
				t.Logf("server %d output:\n%s", i+1, out.String())
			}
		}
	}()

	blocks := readmeBlocks(t, filepath.Join("..", "..", "README.md"))
	ran := 0
	for _, b := range blocks {
		if len(b.commands) == 0 {
			continue
		}
		first := b.commands[0].text
		start := time.Now()
		switch {
		case strings.HasPrefix(first, "go test"), strings.HasPrefix(first, "xcaddy"):
			t.Logf("README.md:%d (%s): skipped: %s", b.line, b.section, strings.SplitN(first, "\n", 2)[0])
			continue
		case strings.HasPrefix(first, "go run ./cmd/bankedge sandbox"):
			r.startServer(b.commands[0], "bankedge sandbox ready")
		case strings.HasPrefix(first, "go run ./cmd/bankedge run "):
			r.startServer(b.commands[0], "serving initial configuration")
		default:
			r.runBlock(b)
		}
		ran++
		t.Logf("README.md:%d (%s): %s", b.line, b.section, time.Since(start).Round(time.Millisecond))
	}
	if !raceEnabled {
		// The first start hashed the admin password at Caddy's cost.
		sf, err := readSecrets(filepath.Join(dir, "sandbox"))
		if err != nil {
			t.Fatal(err)
		}
		checkAdminHash(t, filepath.Join(dir, "sandbox"), sf.values[envAdminHash])
	}
	if len(r.outputs) != 2 || ran < 8 {
		t.Fatalf("ran %d blocks and %d servers: the README's blocks changed shape, teach TestReadme", ran, len(r.outputs))
	}
}

// testBinary is the absolute path of this test binary, which runs main with
// BANKEDGE_TEST_MAIN=1.
func testBinary(t *testing.T) string {
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	return exe
}
