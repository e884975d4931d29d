// Command bankedge is a full Caddy build with the bankedge modules: the PSD2
// QWAC/QSEAL handlers, the private CA app and the PeSIT layer4 modules, plus
// caddy-l4's layer4 app, proxy and tls handlers, and the Redis storage
// (caddy.storage.redis) on which several gateways share their state.
//
// It presents itself as bankedge: its root command, help and version are its
// own, and it carries every command registered with caddycmd (Caddy's run,
// validate, adapt, … and bankedge's sandbox, tpp, pesit and doctor).
package main

import (
	"errors"
	"fmt"
	"os"
	"reflect"
	"runtime"
	"runtime/debug"
	"slices"
	"strings"

	"github.com/caddyserver/caddy/v2"
	caddycmd "github.com/caddyserver/caddy/v2/cmd"
	"github.com/spf13/cobra"
	"github.com/spf13/cobra/doc"

	_ "github.com/caddyserver/caddy/v2/modules/standard"
	_ "github.com/mholt/caddy-l4/layer4"
	_ "github.com/mholt/caddy-l4/modules/l4proxy"
	_ "github.com/mholt/caddy-l4/modules/l4subroute"
	_ "github.com/mholt/caddy-l4/modules/l4tls"
	_ "github.com/pberkel/caddy-storage-redis"

	_ "github.com/bankedge/bankedge"
	"github.com/bankedge/bankedge/internal/runmode"
)

// version is bankedge's version when the build sets it:
//
//	go build -ldflags '-X main.version=v1.2.0' ./cmd/bankedge
//
// Otherwise it comes from the build information (module version or VCS
// revision).
var version string

// readmeURL is where bankedge's own commands are documented.
const readmeURL = "https://github.com/bankedge/bankedge#readme"

// ownCommands are bankedge's commands, documented in the README; the others
// are Caddy's, documented on caddyserver.com.
var ownCommands = []string{"sandbox", "tpp", "pesit", "doctor", "version"}

// droppedCommands download a stock Caddy from caddyserver.com, which
// cannot hold the bankedge modules: they would replace this binary with
// one that cannot serve a bankedge configuration.
var droppedCommands = []string{"upgrade", "add-package", "remove-package"}

func main() {
	os.Exit(execute(os.Args[1:]))
}

// execute runs the command line args and returns the exit status.
func execute(args []string) int {
	root := newRootCommand()
	root.SetArgs(args)
	err := root.Execute()
	if err == nil {
		return 0
	}
	return exitStatus(err)
}

func newRootCommand() *cobra.Command {
	root := &cobra.Command{
		Use:   "bankedge",
		Short: "An edge gateway for a bank: PSD2 XS2A, PeSIT partners and a private CA, built on Caddy",
		Long: `bankedge stands in front of a bank and admits its partners: PSD2 third-party
providers on the Berlin Group XS2A API (QWAC mTLS, QSEAL signatures), PeSIT
file-transfer partners over TCP and TLS, and one private CA that issues all
of their certificates, with an admin API.

First steps:
  bankedge sandbox                 run the example gateway with sandbox secrets
                                   and certificates (all in ./sandbox)
  bankedge tpp request …           send a signed PSD2 request as a TPP
  bankedge pesit send|fetch …      transfer a file as a PeSIT partner
  bankedge doctor --dir sandbox    check a running gateway

bankedge is a complete Caddy ` + caddyVersion() + `: its commands (run, validate, adapt,
reload, hash-password, list-modules, …) work as documented at
https://caddyserver.com/docs/command-line.`,
		Example: `  bankedge sandbox
  bankedge run --config Caddyfile.example --envfile sandbox/secrets.env
  bankedge doctor --config Caddyfile.example`,
		SilenceUsage: true,
		Version:      versionText(),
	}
	root.SetVersionTemplate("{{.Version}}\n")
	ownHelp := root.HelpTemplate() + "\nbankedge documentation: " + readmeURL + "\n"
	caddyHelp := root.HelpTemplate() + "\nThis is a Caddy command: https://caddyserver.com/docs/command-line\n" +
		"bankedge documentation: " + readmeURL + "\n"
	root.SetHelpTemplate(ownHelp)

	for name, c := range caddycmd.Commands() {
		if name == "version" || slices.Contains(droppedCommands, name) {
			continue
		}
		cmd := commandToCobra(c)
		if !slices.Contains(ownCommands, name) {
			cmd.SetHelpTemplate(caddyHelp)
		}
		if name == "validate" {
			validateOnly(cmd)
		}
		root.AddCommand(cmd)
	}
	root.AddCommand(versionCommand(), manpageCommand(root))
	return root
}

// commandToCobra turns a registered command into a cobra command, as
// caddycmd does for its own root.
func commandToCobra(c caddycmd.Command) *cobra.Command {
	cmd := &cobra.Command{
		Use:   strings.TrimSpace(c.Name + " " + c.Usage),
		Short: c.Short,
		Long:  c.Long,
	}
	if c.CobraFunc != nil {
		c.CobraFunc(cmd)
		return cmd
	}
	if c.Flags != nil {
		cmd.Flags().AddGoFlagSet(c.Flags)
	}
	cmd.RunE = runStatus(c.Func)
	return cmd
}

// runStatus wraps a command function for cobra, as
// caddycmd.WrapCommandFuncForCobra does, but keeps every non-zero status: a
// command that reported its findings itself returns (1, nil) and exits 1
// without another message.
func runStatus(f caddycmd.CommandFunc) func(*cobra.Command, []string) error {
	return func(cmd *cobra.Command, _ []string) error {
		status, err := f(caddycmd.Flags{FlagSet: cmd.Flags()})
		if err != nil {
			caddy.Log().Error(err.Error())
		}
		if status == 0 && err == nil {
			return nil
		}
		cmd.SilenceErrors = true
		return &statusError{status: max(status, 1), err: err}
	}
}

// validateOnly makes "bankedge validate" provision the configuration
// without creating anything in storage: no CA, no partner registry.
func validateOnly(cmd *cobra.Command) {
	run := cmd.RunE
	cmd.RunE = func(cmd *cobra.Command, args []string) error {
		runmode.ValidateOnly = true
		return run(cmd, args)
	}
}

// statusError carries a command's exit status.
type statusError struct {
	status int
	err    error
}

func (e *statusError) Error() string {
	if e.err == nil {
		return fmt.Sprintf("exit status %d", e.status)
	}
	return e.err.Error()
}

func (e *statusError) Unwrap() error { return e.err }

// exitStatus returns the exit status an error from a command stands for:
// statusError's, the ExitCode of caddycmd's (unexported) exit error, which
// caddycmd.WrapCommandFuncForCobra returns, or 1.
func exitStatus(err error) int {
	if se, ok := errors.AsType[*statusError](err); ok {
		return se.status
	}
	for e := err; e != nil; e = errors.Unwrap(e) {
		v := reflect.ValueOf(e)
		if v.Kind() != reflect.Pointer || v.IsNil() || v.Elem().Kind() != reflect.Struct {
			continue
		}
		if f := v.Elem().FieldByName("ExitCode"); f.IsValid() && f.CanInt() && f.Int() > 0 {
			return int(f.Int())
		}
	}
	return 1
}

func versionCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "version",
		Short: "Prints the versions of bankedge, Caddy and Go",
		Long: `Prints bankedge's version (set at build time with
-ldflags '-X main.version=…', else from the Go build information: the module
version, or the VCS revision of the clone it was built in), then the versions
of Caddy and caddy-l4 it is built with, and of Go.`,
		Args: cobra.NoArgs,
		Run: func(cmd *cobra.Command, _ []string) {
			fmt.Fprintln(cmd.OutOrStdout(), versionText())
		},
	}
}

// versionText is what "bankedge version" and "bankedge --version" print.
func versionText() string {
	// Three lines, as the issue asks: bankedge, Caddy (with caddy-l4,
	// which the PeSIT listeners run on), Go.
	caddyLine := "Caddy " + caddyVersion()
	if v := depVersion("github.com/mholt/caddy-l4"); v != "" {
		caddyLine += " (caddy-l4 " + v + ")"
	}
	return strings.Join([]string{"bankedge " + bankedgeVersion(), caddyLine, runtime.Version() + " " + runtime.GOOS + "/" + runtime.GOARCH}, "\n")
}

// bankedgeVersion is the version of this build of bankedge.
func bankedgeVersion() string {
	if version != "" {
		return version
	}
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return "(unknown version)"
	}
	const module = "github.com/bankedge/bankedge"
	if bi.Main.Path == module && bi.Main.Version != "" && bi.Main.Version != "(devel)" {
		return bi.Main.Version
	}
	if bi.Main.Path != module {
		// Built by xcaddy: bankedge is a dependency of a generated main.
		if v := depVersion(module); v != "" {
			return v
		}
	}
	var rev, when string
	modified := false
	for _, s := range bi.Settings {
		switch s.Key {
		case "vcs.revision":
			rev = s.Value
		case "vcs.time":
			when = s.Value
		case "vcs.modified":
			modified = s.Value == "true"
		}
	}
	if rev == "" {
		return "(devel)"
	}
	v := "(devel) " + rev[:min(12, len(rev))]
	if modified {
		v += "+modified"
	}
	if when != "" {
		v += " " + when
	}
	return v
}

// caddyVersion is the version of the Caddy module in this build.
func caddyVersion() string {
	if v := depVersion(caddy.ImportPath); v != "" {
		return v
	}
	simple, _ := caddy.Version()
	return simple
}

// depVersion returns the version of a module this binary was built with,
// with its replacement when there is one.
func depVersion(path string) string {
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return ""
	}
	for _, d := range bi.Deps {
		if d.Path != path {
			continue
		}
		if d.Replace != nil {
			if d.Replace.Version != "" {
				return d.Version + " => " + d.Replace.Path + " " + d.Replace.Version
			}
			return d.Version + " => " + d.Replace.Path
		}
		return d.Version
	}
	return ""
}

func manpageCommand(root *cobra.Command) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "manpage --directory <path>",
		Short: "Generates the manual pages of the bankedge commands",
		Args:  cobra.NoArgs,
	}
	dir := cmd.Flags().StringP("directory", "o", "", "the directory to write the manual pages to")
	cmd.RunE = func(*cobra.Command, []string) error {
		if strings.TrimSpace(*dir) == "" {
			return errors.New("--directory is required")
		}
		if err := os.MkdirAll(*dir, 0o755); err != nil {
			return err
		}
		return doc.GenManTree(root, &doc.GenManHeader{Title: "bankedge", Section: "8"}, *dir)
	}
	return cmd
}
