package config

import (
	"bufio"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"slices"
	"strings"
	"testing"
)

// cmdlineChild marks the test binary re-run as a vpnfwd stand-in whose
// own command line holds the secrets.
const cmdlineChild = "CONFIG_TEST_CMDLINE_CHILD"

// Secrets given as flags, in each form the flag package takes (--flag
// value, --flag=value, -flag value, -flag=value, and a password in a
// URL), are read intact and then gone from the process's
// /proc/PID/cmdline, as another user would read it; the other arguments
// are left as they were, and each secret flag gets a warning.
func TestSecretFlagsBlankedFromCmdline(t *testing.T) {
	if os.Getenv(cmdlineChild) == "1" {
		cmdlineChildMain()
		return
	}
	secrets := map[string]string{ // what the child reads -> the secret
		"qbittorrent url":       "http://admin:URLPW-k1@127.0.0.1:1/",
		"qbittorrent password":  "QBPW-k2",
		"transmission password": "TRPW-k3",
		"deluge password":       "DLPW-k4",
		"provider password":     "PIAPW-k5",
		"dip token":             "DIP-k6",
		"default role":          `{"auth":"apikey","apikey":"APIKEY-k7"}`,
	}
	args := []string{"-test.run=^TestSecretFlagsBlankedFromCmdline$", "--",
		"--provider", "pia", "--username", "p1234567",
		"--qbittorrent", secrets["qbittorrent url"],
		"--qbittorrent-password", secrets["qbittorrent password"],
		"--transmission", "http://127.0.0.1:1/transmission/rpc", "--transmission-password=" + secrets["transmission password"],
		"--deluge", "http://127.0.0.1:1", "-deluge-password", secrets["deluge password"],
		"-password=" + secrets["provider password"],
		"--dip-token", secrets["dip token"],
		"--api-auth-default-role", secrets["default role"],
	}
	cmd := exec.Command(os.Args[0], args...)
	cmd.Env = append(os.Environ(), cmdlineChild+"=1")
	cmd.Stderr = os.Stderr
	stdin, _ := cmd.StdinPipe()
	stdout, _ := cmd.StdoutPipe()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Wait()
	defer stdin.Close() // the child exits when its standard input closes
	read := map[string]string{}
	var warnings []string
	sc := bufio.NewScanner(stdout)
	for sc.Scan() && sc.Text() != "ready" {
		k, v, _ := strings.Cut(sc.Text(), "=")
		if k == "warning" {
			warnings = append(warnings, v)
		} else {
			read[k] = v
		}
	}
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", cmd.Process.Pid))
	if err != nil {
		t.Fatal(err)
	}
	cmdline := strings.ReplaceAll(string(b), "\x00", " ")
	t.Logf("child's /proc/PID/cmdline: %s", cmdline)
	if len(read) != len(secrets) {
		t.Fatalf("the child read %q", read)
	}
	for what, s := range secrets {
		if read[what] != s {
			t.Errorf("%s read as %q, want %q", what, read[what], s)
		}
		secretPart := strings.TrimSuffix(strings.TrimPrefix(s, "http://admin:"), "@127.0.0.1:1/")
		if strings.Contains(cmdline, secretPart) {
			t.Errorf("the %s is still in /proc/PID/cmdline", what)
		}
	}
	for _, kept := range []string{"--username p1234567 ", "--qbittorrent-password xxxxxxx ", "--transmission-password=xxxxxxx ",
		"http://admin:xxxxxxxx@127.0.0.1:1/ ", "-password=xxxxxxxx ", "--deluge http://127.0.0.1:1 "} {
		if !strings.Contains(cmdline, kept) {
			t.Errorf("/proc/PID/cmdline lacks %q", kept)
		}
	}
	if len(warnings) != len(secrets) {
		t.Errorf("%d warnings for %d secrets on the command line:\n%s", len(warnings), len(secrets), strings.Join(warnings, "\n"))
	}
	for _, w := range warnings {
		for _, s := range secrets {
			if strings.Contains(w, s) {
				t.Errorf("a warning shows the secret: %s", w)
			}
		}
	}
}

// cmdlineChildMain parses the arguments after "--" as vpnfwd up does,
// prints what it read and its warnings, says "ready", and waits for its
// standard input to close.
func cmdlineChildMain() {
	fs := flag.NewFlagSet("vpnfwd up", flag.ContinueOnError)
	f := RegisterFlags(fs, testProviders)
	if err := fs.Parse(flag.Args()); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	cfg, err := f.Load(func(string) (string, bool) { return "", false })
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	pw := map[string]*Publish{}
	for i := range cfg.Publish {
		pw[cfg.Publish[i].Type] = &cfg.Publish[i]
	}
	for _, kv := range [][2]string{
		{"qbittorrent url", pw["qbittorrent"].URL},
		{"qbittorrent password", string(pw["qbittorrent"].Password)},
		{"transmission password", string(pw["transmission"].Password)},
		{"deluge password", string(pw["deluge"].Password)},
		{"provider password", cfg.Provider.Settings.String("password")},
		{"dip token", cfg.Provider.Settings.String("dip_token")},
		{"default role", cfg.API.AuthDefaultRole},
	} {
		fmt.Printf("%s=%s\n", kv[0], kv[1])
	}
	for _, w := range cfg.Warnings {
		fmt.Printf("warning=%s\n", w)
	}
	fmt.Println("ready")
	io.Copy(io.Discard, os.Stdin)
	os.Exit(0)
}

// Every secret option has a file form (FLAG-file), as the warning for a
// secret on the command line advises, and the default role's file form
// is read as the inline one would be.
func TestSecretOptionsHaveFileForms(t *testing.T) {
	all := AllOptions(testProviders)
	flags := map[string]bool{}
	for _, o := range all {
		flags[o.Flag] = true
	}
	n := 0
	for _, o := range all {
		if o.Secret {
			n++
			// A URL that may carry a token in its query is blanked too,
			// but it is a setting, not a secret file: its other form is
			// the environment.
			if !flags[o.Flag+"-file"] && o.Flag != "public-ip-url" {
				t.Errorf("--%s is a secret with no --%s-file", o.Flag, o.Flag)
			}
		}
	}
	if n < 6 {
		t.Errorf("only %d secret options", n)
	}

	dir := t.TempDir()
	role := writeFile(t, dir, "role.json", `{"auth":"apikey","apikey":"k-from-file"}`+"\n")
	tests := []struct {
		name    string
		args    []string
		wantKey string // the role's key, or
		wantErr string // an error naming this
	}{
		{"file", []string{"--api-auth-default-role-file", role}, "k-from-file", ""},
		{"inline", []string{"--api-auth-default-role", `{"auth":"apikey","apikey":"k-inline"}`}, "k-inline", ""},
		{"missing file", []string{"--api-auth-default-role-file", dir + "/nope"}, "", "api.auth_default_role_file (--api-auth-default-role-file)"},
		{"directory", []string{"--api-auth-default-role-file", dir}, "", dir},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg, err := load(t, tt.args, nil)
			if err != nil {
				t.Fatal(err)
			}
			roles, err := cfg.API.Roles()
			switch {
			case tt.wantErr != "":
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Errorf("error %v, want one naming %q", err, tt.wantErr)
				}
			case err != nil || len(roles) != 1 || roles[0].APIKey != tt.wantKey:
				t.Errorf("roles %+v %v, want one with key %q", roles, err, tt.wantKey)
			}
		})
	}
	cfg, _ := load(t, []string{"--api-auth-default-role-file", role}, nil)
	if !slices.Contains(cfg.secretFiles(), role) {
		t.Errorf("the role file is not among the secret files checked for their mode: %q", cfg.secretFiles())
	}
}

// The warning for a secret on the command line names where to give it
// instead, and is not given for a value that holds none.
func TestCmdlineWarning(t *testing.T) {
	all := AllOptions(testProviders)
	opt := func(flag string) Option {
		for _, o := range all {
			if o.Flag == flag {
				return o
			}
		}
		t.Fatalf("no option --%s", flag)
		return Option{}
	}
	tests := []struct {
		flag, value string
		want        []string // "" for no warning
	}{
		{"qbittorrent-password", "pw-x1", []string{"--qbittorrent-password was given", "--qbittorrent-password-file FILE", "VPNFWD_QBITTORRENT_PASSWORD"}},
		{"password", "pw-x2", []string{"--password was given", "--password-file FILE", "VPNFWD_PASSWORD"}},
		{"dip-token", "t0k3n-x", []string{"--dip-token-file FILE", "VPNFWD_DIP_TOKEN)"}},
		{"api-auth-default-role", `{"auth":"apikey","apikey":"k"}`, []string{"--api-auth-default-role-file FILE"}},
		{"api-auth-default-role", `{"auth":"none"}`, nil},
		{"transmission", "http://u:pw@127.0.0.1:9091/transmission/rpc", []string{"password in --transmission's URL", "--transmission-password-file FILE", "VPNFWD_TRANSMISSION_PASSWORD"}},
		{"public-ip-url", "https://u:pw@example.net/ip", []string{"password in --public-ip-url's URL", "(VPNFWD_PUBLIC_IP_URL)"}},
		{"transmission", "http://127.0.0.1:9091/transmission/rpc", nil},
		{"forward", "127.0.0.1:8080", nil},
	}
	for _, tt := range tests {
		w := cmdlineWarning(opt(tt.flag), tt.value, all)
		if (w == "") != (tt.want == nil) || strings.Contains(w, "pw@") || strings.Contains(w, tt.value) {
			t.Errorf("--%s %s: %q", tt.flag, tt.value, w)
		}
		for _, s := range tt.want {
			if !strings.Contains(w, s) {
				t.Errorf("--%s %s: %q lacks %q", tt.flag, tt.value, w, s)
			}
		}
	}
}
