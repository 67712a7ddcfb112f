package publish

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os/exec"
	"strconv"
	"strings"
	"time"
)

// Exec runs a command on every new port. {{port}} in the command becomes
// the first port, {{ports}} all of them comma-separated ({{PORT}} and
// {{PORTS}} too, as in gluetun's commands). The command is
// split into words (quotes group) and run directly; Shell runs it with
// /bin/sh -c instead. It never runs when the port is lost, unless OnLost:
// then it runs only then (with VPNFWD_REASON=lost and no port).
type Exec struct {
	Command string
	Shell   bool
	Timeout time.Duration // default 30 s
	OnLost  bool
}

// Name implements Consumer.
func (e Exec) Name() string {
	if e.OnLost {
		return "exec(lost)"
	}
	return "exec"
}

// Publish implements Consumer.
func (e Exec) Publish(ctx context.Context, ev Event) error {
	if lost := len(ev.Ports) == 0; lost != e.OnLost {
		return nil
	}
	var ports []string
	for _, p := range ev.Ports {
		ports = append(ports, strconv.Itoa(int(p)))
	}
	return e.run(ctx, ev, ports)
}

// run runs the command for ports (none: the port was lost).
func (e Exec) run(ctx context.Context, ev Event, ports []string) error {
	first := ""
	if len(ports) > 0 {
		first = ports[0]
	}
	// {{PORT}} and {{PORTS}} as gluetun's commands write them.
	all := strings.Join(ports, ",")
	expand := strings.NewReplacer("{{port}}", first, "{{ports}}", all, "{{PORT}}", first, "{{PORTS}}", all)
	var argv []string
	if e.Shell {
		argv = []string{"/bin/sh", "-c", expand.Replace(e.Command)}
	} else {
		words, err := SplitWords(e.Command)
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
	timeout := e.Timeout
	if timeout == 0 {
		timeout = 30 * time.Second
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
	cmd.Env = append(hookEnv(cmd.Environ()), "VPNFWD_PORT="+first, "VPNFWD_PORTS="+strings.Join(ports, ","), "VPNFWD_REASON="+ev.Reason)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	cmd.WaitDelay = time.Second
	err := cmd.Run()
	if ctx.Err() == context.DeadlineExceeded {
		return fmt.Errorf("hook %q timed out after %s", argv[0], timeout)
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
func hookEnv(env []string) []string {
	out := env[:0:0]
	for _, kv := range env {
		if !strings.HasPrefix(kv, "VPNFWD_") {
			out = append(out, kv)
		}
	}
	return out
}
