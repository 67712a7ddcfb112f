package main

import (
	"bytes"
	"context"
	"fmt"
	"regexp"
	"slices"
	"strings"
)

// runCompletion is `vpnfwd completion bash|zsh|fish`: a completion script
// for the commands and each command's flags, read off the commands' own
// help, so it lists what this build has.
func runCompletion(ctx context.Context, env *cliEnv, args []string) error {
	fs := newFlagSet(env, "completion", "bash | zsh | fish")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if fs.NArg() != 1 {
		return &exitError{2, fmt.Errorf("name a shell: vpnfwd completion bash (or zsh, fish); e.g. vpnfwd completion bash > /etc/bash_completion.d/vpnfwd")}
	}
	flags := commandFlags(ctx)
	switch fs.Arg(0) {
	case "bash":
		fmt.Fprint(env.stdout, bashCompletion(flags))
	case "zsh":
		// zsh runs bash completions through bashcompinit.
		fmt.Fprint(env.stdout, "#compdef vpnfwd\nautoload -U +X bashcompinit && bashcompinit\n"+bashCompletion(flags))
	case "fish":
		fmt.Fprint(env.stdout, fishCompletion(flags))
	default:
		return &exitError{2, fmt.Errorf("unknown shell %q: bash, zsh or fish", fs.Arg(0))}
	}
	return nil
}

// flagLine is a flag in a command's help ("  -name VALUE").
var flagLine = regexp.MustCompile(`(?m)^  -([a-z0-9][a-z0-9-]*)`)

// commandFlags are each command's flags, as its -h lists them.
func commandFlags(ctx context.Context) map[string][]string {
	out := map[string][]string{}
	for _, c := range commands {
		if c.name == "completion" {
			continue
		}
		var buf bytes.Buffer
		env := &cliEnv{stdout: &buf, stderr: &bytes.Buffer{}, lookupEnv: func(string) (string, bool) { return "", false }}
		c.run(ctx, env, []string{"-h"})
		for _, m := range flagLine.FindAllStringSubmatch(buf.String(), -1) {
			out[c.name] = append(out[c.name], "--"+m[1])
		}
		slices.Sort(out[c.name])
	}
	return out
}

func commandNames() []string {
	var names []string
	for _, c := range commands {
		names = append(names, c.name)
	}
	return names
}

func bashCompletion(flags map[string][]string) string {
	var b strings.Builder
	b.WriteString("# vpnfwd's bash completion: vpnfwd completion bash > /etc/bash_completion.d/vpnfwd\n_vpnfwd() {\n")
	b.WriteString("  local cur=${COMP_WORDS[COMP_CWORD]}\n")
	fmt.Fprintf(&b, "  if [ \"$COMP_CWORD\" -eq 1 ]; then COMPREPLY=($(compgen -W %q -- \"$cur\")); return; fi\n", strings.Join(commandNames(), " "))
	b.WriteString("  case \"$cur\" in -*) ;; *) COMPREPLY=(); return ;; esac\n  case \"${COMP_WORDS[1]}\" in\n")
	for _, name := range commandNames() {
		if len(flags[name]) > 0 {
			fmt.Fprintf(&b, "    %s) COMPREPLY=($(compgen -W %q -- \"$cur\")) ;;\n", name, strings.Join(flags[name], " "))
		}
	}
	b.WriteString("  esac\n}\ncomplete -o default -F _vpnfwd vpnfwd\n")
	return b.String()
}

func fishCompletion(flags map[string][]string) string {
	var b strings.Builder
	b.WriteString("# vpnfwd's fish completion: vpnfwd completion fish > ~/.config/fish/completions/vpnfwd.fish\ncomplete -c vpnfwd -f\n")
	for _, c := range commands {
		fmt.Fprintf(&b, "complete -c vpnfwd -n __fish_use_subcommand -a %s -d %q\n", c.name, c.summary)
	}
	for _, name := range commandNames() {
		for _, f := range flags[name] {
			fmt.Fprintf(&b, "complete -c vpnfwd -n '__fish_seen_subcommand_from %s' -l %s\n", name, strings.TrimPrefix(f, "--"))
		}
	}
	return b.String()
}
