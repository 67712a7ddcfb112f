package publish

import (
	"bytes"
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/vpnfwd/vpnfwd/secret"
	"github.com/vpnfwd/vpnfwd/session"
)

// Exec runs hook commands as gluetun runs VPN_PORT_FORWARDING_UP_COMMAND
// and _DOWN_COMMAND (internal/portforward/service: start.go, stop.go,
// command.go): Command for each new port, with {{PORT}} the first port and
// {{PORTS}} all of them comma-separated; Down with the ports being given
// up, when the port is lost (and at exit) and, before Command, when the
// port changes (gluetun stops the old forward, running its down command,
// then starts the new one). {{VPN_INTERFACE}} is Interface in both, and
// {{port}}/{{ports}} are vpnfwd's older spelling. A command is split into
// words (quotes group, as gluetun's command.Split does) and run directly;
// Shell runs it with /bin/sh -c instead. Neither ever runs with port 0.
// A command's output (its first 4 KiB) is logged at debug level when it
// succeeds and at warn level when it fails.
type Exec struct {
	Command     string // on a new port ("" for none)
	Down        string // when ports are given up ("" for none)
	Shell       bool
	Timeout     time.Duration // Command's; default 30 s
	DownTimeout time.Duration // Down's; default 60 s, as gluetun gives its down command
	Interface   string        // {{VPN_INTERFACE}}: the tunnel's interface ("" in netstack mode: any)
	Log         *slog.Logger
}

// Name implements Consumer.
func (e Exec) Name() string {
	if e.Command == "" {
		return "exec(lost)"
	}
	return "exec"
}

// Publish implements Consumer.
func (e Exec) Publish(ctx context.Context, ev session.Event) error {
	var downErr error
	if e.Down != "" && len(ev.Released) > 0 {
		downErr = e.run(ctx, e.Down, "lost", ev.Released, e.timeout(true))
		if downErr != nil && len(ev.Ports()) > 0 && e.Log != nil {
			// The new port matters more: it is set up whatever the down
			// command said, and only its failure is retried.
			e.Log.Warn("port-lost hook failed", "ports", ev.Released, "err", downErr)
			downErr = nil
		}
	}
	if e.Command == "" || len(ev.Ports()) == 0 {
		return downErr
	}
	return e.run(ctx, e.Command, string(ev.Kind), ev.Ports(), e.timeout(false))
}

// timeout is the up (or down) command's time limit: gluetun gives its
// down command 60 s.
func (e Exec) timeout(down bool) time.Duration {
	if down {
		return cmp.Or(e.DownTimeout, 60*time.Second)
	}
	return cmp.Or(e.Timeout, 30*time.Second)
}

// run runs one command for ports, for timeout at most.
func (e Exec) run(ctx context.Context, command, reason string, ps []uint16, timeout time.Duration) error {
	var ports []string
	for _, p := range ps {
		ports = append(ports, strconv.Itoa(int(p)))
	}
	first := ""
	if len(ports) > 0 {
		first = ports[0]
	}
	all := strings.Join(ports, ",")
	expand := strings.NewReplacer("{{PORT}}", first, "{{PORTS}}", all, "{{VPN_INTERFACE}}", e.Interface,
		"{{port}}", first, "{{ports}}", all)
	var argv []string
	if e.Shell {
		argv = []string{"/bin/sh", "-c", expand.Replace(command)}
	} else {
		words, err := SplitWords(command)
		if err != nil {
			return err
		}
		for _, w := range words {
			argv = append(argv, expand.Replace(w))
		}
	}
	if len(argv) == 0 {
		return errors.New("empty command")
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
	cmd.Env = append(hookEnv(cmd.Environ()), "VPNFWD_PORT="+first, "VPNFWD_PORTS="+all, "VPNFWD_REASON="+reason)
	out := &capped{max: 4096} // a hook that prints forever must not fill memory
	cmd.Stdout, cmd.Stderr = out, out
	// The hook runs in a process group of its own, and the timeout (or
	// vpnfwd's exit) ends the whole group: a shell's children and their
	// children die with it instead of living on (`sh -c 'sleep 1000 &
	// sleep 1000'`). WaitDelay: a child that escaped the group but holds
	// the output pipe cannot hold the wait.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return killGroup(cmd.Process.Pid) }
	cmd.WaitDelay = time.Second
	err := cmd.Run()
	if ctx.Err() != nil && cmd.Process != nil {
		// The hook itself may have ended before the deadline while its
		// children lived on holding the pipe: Cancel was not called then.
		killGroup(cmd.Process.Pid)
	}
	if ctx.Err() == context.DeadlineExceeded {
		err = fmt.Errorf("hook %q timed out after %s", argv[0], timeout)
	}
	e.logOutput(argv[0], reason, ps, out.String(), err)
	if ctx.Err() == context.DeadlineExceeded {
		return err
	}
	if err != nil {
		msg := strings.TrimSpace(out.String())
		if len(msg) > 200 {
			msg = msg[:200] + "..."
		}
		if msg != "" {
			return fmt.Errorf("hook %q: %w: %s", argv[0], err, msg)
		}
		return fmt.Errorf("hook %q: %w", argv[0], err)
	}
	return nil
}

// logOutput logs what a hook printed: at debug level when it succeeded,
// at warn level when it failed (the error then says why).
func (e Exec) logOutput(prog, reason string, ports []uint16, output string, err error) {
	if e.Log == nil {
		return
	}
	if err != nil {
		e.Log.Warn("hook failed", "hook", prog, "reason", reason, "ports", ports, "err", err, "output", output)
		return
	}
	if output != "" {
		e.Log.Debug("hook output", "hook", prog, "reason", reason, "ports", ports, "output", output)
	}
}

// CheckHook reports a hook command that could never run: unbalanced
// quotes, or a program that is not there (an absolute path that is not an
// executable file, or a name not found in PATH). With shell the program is
// /bin/sh. vpnfwd checks at start rather than at the first port, so a
// missing program is an error naming it, not a failure much later.
func CheckHook(command string, shell bool) error {
	prog := "/bin/sh"
	if !shell {
		words, err := SplitWords(command)
		if err != nil {
			return err
		}
		if len(words) == 0 {
			return errors.New("empty command")
		}
		prog = words[0]
	}
	if strings.Contains(prog, "{{") {
		return nil // known only once the port is
	}
	if _, err := exec.LookPath(prog); err != nil {
		where := "in PATH (" + os.Getenv("PATH") + ")"
		if strings.Contains(prog, "/") {
			where = "as an executable file"
		}
		return fmt.Errorf("program %s not found %s: a hook runs where vpnfwd runs: install it there, or name one that is (vpnfwd's image has /bin/sh, busybox's, and /bin/wget, vpnfwd's GNU-Wget-compatible client)", prog, where)
	}
	return nil
}

// killGroup sends SIGKILL to the process group a hook leads. The group
// outlives its leader while any member lives, so its id cannot have been
// reused by then; a group already gone is not an error.
func killGroup(pgid int) error {
	err := syscall.Kill(-pgid, syscall.SIGKILL)
	if errors.Is(err, syscall.ESRCH) {
		return os.ErrProcessDone
	}
	return err
}

// SplitWords splits a command line on blanks; single and double quotes
// group words and a backslash escapes the next character. No other shell
// syntax is interpreted.
func SplitWords(s string) ([]string, error) {
	var (
		words []string
		cur   strings.Builder
		in    bool
		quote rune
		esc   bool
	)
	for _, r := range s {
		switch {
		case esc:
			cur.WriteRune(r)
			esc, in = false, true
		case r == '\\' && quote != '\'':
			esc = true
		case quote != 0:
			if r == quote {
				quote = 0
			} else {
				cur.WriteRune(r)
			}
		case r == '"' || r == '\'':
			quote, in = r, true
		case r == ' ' || r == '\t' || r == '\n':
			if in {
				words = append(words, cur.String())
				cur.Reset()
				in = false
			}
		default:
			cur.WriteRune(r)
			in = true
		}
	}
	if quote != 0 || esc {
		return nil, fmt.Errorf("command %q: unterminated quote or escape", s)
	}
	if in {
		words = append(words, cur.String())
	}
	return words, nil
}

// hookEnv is vpnfwd's environment less every VPNFWD_* variable: those are
// its configuration, passwords and tokens included, and none of the
// hook's business. The hook gets VPNFWD_PORT, VPNFWD_PORTS and
// VPNFWD_REASON instead.
func hookEnv(env []string) []string { return secret.CleanEnv(env) }

// capped keeps the first max bytes written to it and drops the rest. It
// has no ReadFrom (an embedded bytes.Buffer's would let io.Copy, which
// os/exec uses, fill it past max).
type capped struct {
	b   bytes.Buffer
	max int
}

func (c *capped) Write(p []byte) (int, error) {
	if room := c.max - c.b.Len(); room > 0 {
		c.b.Write(p[:min(len(p), room)])
	}
	return len(p), nil
}

func (c *capped) String() string { return c.b.String() }
