package config

import (
	"strings"
	"testing"
)

// Off loopback the API starts only behind a token or a role; a setting
// that yields no role is an error naming it; opening the API takes a role
// with auth "none", and is warned about.
func TestAPIAuthValidation(t *testing.T) {
	dir := t.TempDir()
	empty := writeFile(t, dir, "empty.toml", "")
	comments := writeFile(t, dir, "comments.toml", "# nothing yet\n")
	keyed := writeFile(t, dir, "auth.toml", "[[roles]]\nname = \"qbt\"\nauth = \"apikey\"\napikey = \"k\"\nroutes = [\"GET /v1/portforward\"]\n")
	token := writeFile(t, dir, "token", "t0ken\n")
	for _, c := range []struct {
		args []string
		want string // "" accepted
		warn string
	}{
		{[]string{"--api", "0.0.0.0:9070"}, "reachable from other hosts and has no authentication", ""},
		{[]string{"--api", "[::]:9070"}, "--api-auth-default-role '{\"auth\":\"none\"}'", ""},
		{[]string{"--api", "0.0.0.0:9070", "--api-auth-default-role", "null"}, "api.auth_default_role (--api-auth-default-role)", ""},
		{[]string{"--api", "0.0.0.0:9070", "--api-auth-default-role", "{}"}, "sets no auth, so it would protect nothing", ""},
		{[]string{"--api", "0.0.0.0:9070", "--api-auth-default-role", `{"auth":""}`}, "--api-auth-default-role", ""},
		{[]string{"--api", "0.0.0.0:9070", "--api-auth-default-role", `{"auth":"apikey","apikey":"k"} {}`}, "data after the JSON object", ""},
		{[]string{"--api", "127.0.0.1:9070", "--api-auth-default-role", "{}"}, "--api-auth-default-role", ""}, // on loopback too
		{[]string{"--api", "0.0.0.0:9070", "--api-auth-config", empty}, "--api-auth-config", ""},
		{[]string{"--api", "0.0.0.0:9070", "--api-auth-config", comments}, comments + " names no role", ""},
		{[]string{"--api", "0.0.0.0:9070", "--api-auth-config", keyed}, "", ""},
		{[]string{"--api", "0.0.0.0:9070", "--api-token-file", token}, "", ""},
		{[]string{"--api", "0.0.0.0:9070", "--api-auth-default-role", `{"auth":"basic","username":"u","password":"p"}`}, "", ""},
		{[]string{"--api", "0.0.0.0:9070", "--api-auth-default-role", `{"auth":"none"}`}, "", `role "default" has auth "none": anyone who reaches 0.0.0.0:9070 may call`},
		{[]string{"--api", "unix:@vpnfwd"}, "abstract socket", ""},
		{[]string{"--api", "unix:"}, "unix: names no file", ""},
		{[]string{"--api", "unix:/run/vpnfwd/api.sock"}, "", ""},
	} {
		cfg, err := load(t, c.args, nil)
		if err == nil {
			err = cfg.Validate()
		}
		switch {
		case c.want == "" && err != nil:
			t.Errorf("%q: %v", c.args, err)
		case c.want != "" && (err == nil || !strings.Contains(err.Error(), c.want)):
			t.Errorf("%q: error %v, want %q", c.args, err, c.want)
		case c.warn != "" && !strings.Contains(strings.Join(cfg.Warnings, "\n"), c.warn):
			t.Errorf("%q: warnings %q, want %q", c.args, cfg.Warnings, c.warn)
		}
	}
}

// gluetun's HTTP_CONTROL_SERVER_AUTH_DEFAULT_ROLE='{}' (its default) is no
// default role: the API on :8000 starts, and a route no role names answers
// 401 (GluetunAuth), never open.
func TestGluetunEmptyDefaultRole(t *testing.T) {
	for _, role := range []string{"{}", `{"auth":""}`, "null"} {
		env := map[string]string{
			"VPN_SERVICE_PROVIDER": "protonvpn", "VPN_TYPE": "wireguard", "WIREGUARD_PRIVATE_KEY": testPriv,
			"WIREGUARD_ADDRESSES": "10.2.0.2/32", "WIREGUARD_PUBLIC_KEY": testPub, "WIREGUARD_ENDPOINT_IP": "192.0.2.10",
			"HTTP_CONTROL_SERVER_AUTH_DEFAULT_ROLE": role,
		}
		c, err := load(t, []string{"up"}, env)
		if err == nil {
			err = c.Validate()
		}
		if err != nil {
			t.Fatalf("%s: %v", role, err)
		}
		roles, err := c.API.Roles()
		if c.API.Listen != "0.0.0.0:8000" || !c.API.GluetunAuth || len(roles) != 0 || err != nil {
			t.Errorf("%s: api %+v, roles %v %v: want :8000, gluetun's reading, no role", role, c.API, roles, err)
		}
	}
	// Trailing data is an error in gluetun's environment too.
	c, err := load(t, []string{"up"}, map[string]string{
		"VPN_SERVICE_PROVIDER": "protonvpn", "VPN_TYPE": "wireguard", "WIREGUARD_PRIVATE_KEY": testPriv,
		"WIREGUARD_ADDRESSES": "10.2.0.2/32", "WIREGUARD_PUBLIC_KEY": testPub, "WIREGUARD_ENDPOINT_IP": "192.0.2.10",
		"HTTP_CONTROL_SERVER_AUTH_DEFAULT_ROLE": `{"auth":"apikey","apikey":"k"}x`,
	})
	if err == nil {
		err = c.Validate()
	}
	if err == nil || !strings.Contains(err.Error(), "data after the JSON object") {
		t.Errorf("trailing data: %v", err)
	}
}
