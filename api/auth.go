package api

import (
	"crypto/sha256"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"sort"
	"strings"

	"github.com/BurntSushi/toml"

	"github.com/vpnfwd/vpnfwd/secret"
)

// Role is one entry of gluetun's control-server auth file
// (HTTP_CONTROL_SERVER_AUTH_CONFIG_FILEPATH, /gluetun/auth/config.toml;
// gluetun's internal/server/middlewares/auth/settings.go): the routes it
// may call ("GET /v1/vpn/status") and how it proves itself: "none",
// "apikey" (X-API-Key or ?api_key=) or "basic" (HTTP basic auth).
type Role struct {
	Name     string   `toml:"name" json:"name"`
	Auth     string   `toml:"auth" json:"auth"`
	APIKey   string   `toml:"apikey" json:"apikey"`
	Username string   `toml:"username" json:"username"`
	Password string   `toml:"password" json:"password"`
	Routes   []string `toml:"routes" json:"-"`
}

// gluetunRoutes are the routes gluetun's auth file may name (its
// validRoutes): a file written for gluetun is accepted as it is, even
// where it names a route vpnfwd does not serve (that route answers 404).
var gluetunRoutes = []string{
	"GET /openvpn/actions/restart", "GET /openvpn/portforwarded", "GET /openvpn/settings",
	"GET /unbound/actions/restart", "GET /updater/restart",
	"GET /v1/version", "GET /v1/vpn/status", "PUT /v1/vpn/status", "GET /v1/vpn/settings", "PUT /v1/vpn/settings",
	"GET /v1/openvpn/status", "PUT /v1/openvpn/status", "GET /v1/openvpn/portforwarded", "GET /v1/openvpn/settings",
	"GET /v1/dns/status", "PUT /v1/dns/status", "GET /v1/updater/status", "PUT /v1/updater/status",
	"GET /v1/publicip/ip", "GET /v1/portforward", "PUT /v1/portforward",
}

// ownRoutes are vpnfwd's routes a role may name too.
var ownRoutes = []string{"GET /v1/status", "GET /v1/port", "GET /v1/events", "GET /metrics"}

func knownRoute(r string) bool {
	return slices.Contains(gluetunRoutes, r) || slices.Contains(ownRoutes, r)
}

// validate checks a role as gluetun does (a known auth kind, its secret
// set, known routes), naming the role and the fix.
func (r Role) validate() error {
	switch r.Auth {
	case "none":
	case "apikey":
		if strings.TrimSpace(r.APIKey) == "" { // a blank key protects nothing
			return fmt.Errorf("role %q: auth \"apikey\" needs apikey = \"...\"", r.Name)
		}
	case "basic":
		if strings.TrimSpace(r.Username) == "" || strings.TrimSpace(r.Password) == "" {
			return fmt.Errorf("role %q: auth \"basic\" needs username and password", r.Name)
		}
	default:
		return fmt.Errorf("role %q: auth %q is not one of none, apikey, basic", r.Name, r.Auth)
	}
	for _, route := range r.Routes {
		if !knownRoute(route) {
			return fmt.Errorf("role %q: route %q is not a control-server route (write \"METHOD /path\", e.g. \"GET /v1/portforward\")", r.Name, route)
		}
	}
	return nil
}

// ReadAuthFile reads the API's auth settings as vpnfwd's own
// (--api-auth-config, --api-auth-default-role): gluetun's auth file
// (path: [[roles]] tables, nothing else; an unknown key is an error, as
// gluetun's strict decoding makes it) and the default role (JSON such as
// {"auth":"apikey","apikey":"..."}: it covers every route no role names).
// Each setting given must yield a role: an empty or comment-only file, a
// default role with no auth (null, {}, {"auth":""}) and JSON with
// trailing data are errors naming the setting, for they would protect
// nothing while looking as if they did. A role with auth "none" is a
// role: the routes it names are open, as its author wrote.
func ReadAuthFile(path, defaultRole string) ([]Role, error) {
	return readAuth(path, defaultRole, false)
}

// ReadGluetunAuth reads the same settings as gluetun reads them from its
// environment (HTTP_CONTROL_SERVER_AUTH_CONFIG_FILEPATH,
// HTTP_CONTROL_SERVER_AUTH_DEFAULT_ROLE): a default role with no auth
// ({}, gluetun's default) is no default role, and the file may name no
// role. The routes no role names then answer 401 (Options.AuthRequired),
// every route when there is no role at all: never open.
func ReadGluetunAuth(path, defaultRole string) ([]Role, error) {
	return readAuth(path, defaultRole, true)
}

const defaultRoleSetting = "api.auth_default_role (--api-auth-default-role)"

func readAuth(path, defaultRole string, gluetun bool) ([]Role, error) {
	var roles []Role
	if path != "" {
		var err error
		if roles, err = readRoles(path); err != nil {
			return nil, err
		}
		if len(roles) == 0 && !gluetun {
			return nil, fmt.Errorf("api.auth_config (--api-auth-config): %s names no role, so it would protect nothing: "+
				"add [[roles]] with auth \"apikey\" or \"basic\" and the routes they may call, or leave the setting out", path)
		}
	}
	if defaultRole == "" {
		return roles, nil
	}
	d, err := parseDefaultRole(defaultRole)
	if err != nil {
		return nil, err
	}
	if d.Auth == "" {
		if gluetun {
			return roles, nil // gluetun's "no default role": the rest answer 401
		}
		shown := strings.TrimSpace(defaultRole)
		if d.APIKey != "" || d.Password != "" || len(shown) > 60 {
			shown = "the role" // keep secrets out of errors
		}
		return nil, fmt.Errorf("%s: %s sets no auth, so it would protect nothing: "+
			"give {\"auth\":\"apikey\",\"apikey\":\"...\"} or {\"auth\":\"basic\",\"username\":\"...\",\"password\":\"...\"}, "+
			"{\"auth\":\"none\"} to open every route no role names, or leave the setting out", defaultRoleSetting, shown)
	}
	if d.Name == "" {
		d.Name = "default"
	}
	if err := d.validate(); err != nil {
		return nil, fmt.Errorf("%s: %w", defaultRoleSetting, err)
	}
	covered := map[string]bool{}
	for _, r := range roles {
		for _, route := range r.Routes {
			covered[route] = true
		}
	}
	for _, route := range append(slices.Clone(gluetunRoutes), ownRoutes...) {
		if !covered[route] {
			d.Routes = append(d.Routes, route)
		}
	}
	sort.Strings(d.Routes)
	return append(roles, d), nil
}

// readRoles reads and checks the roles of gluetun's auth file.
func readRoles(path string) ([]Role, error) {
	b, err := secret.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("api auth file: %w", err)
	}
	var f struct {
		Roles []Role `toml:"roles"`
	}
	md, err := toml.Decode(string(b), &f)
	if err != nil {
		return nil, fmt.Errorf("api auth file %s: %w", path, err)
	}
	if und := md.Undecoded(); len(und) > 0 {
		return nil, fmt.Errorf("api auth file %s: unknown key %q (a role has name, auth, apikey, username, password, routes)", path, und[0].String())
	}
	for i := range f.Roles {
		if err := f.Roles[i].validate(); err != nil {
			return nil, fmt.Errorf("api auth file %s: %w", path, err)
		}
	}
	return f.Roles, nil
}

// parseDefaultRole decodes one JSON role: unknown fields and anything
// after it are errors (gluetun would take the first value and drop the
// rest unread).
func parseDefaultRole(s string) (Role, error) {
	var d Role
	dec := json.NewDecoder(strings.NewReader(s))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&d); err != nil {
		return Role{}, fmt.Errorf("%s: %w (want JSON such as {\"auth\":\"apikey\",\"apikey\":\"...\"})", defaultRoleSetting, err)
	}
	end := dec.InputOffset()
	if _, err := dec.Token(); err != io.EOF {
		return Role{}, fmt.Errorf("%s: data after the JSON object (byte %d on): give one object, such as {\"auth\":\"apikey\",\"apikey\":\"...\"}", defaultRoleSetting, end)
	}
	return d, nil
}

// Open reports whether the role lets requests through with no
// credentials (auth "none"): its routes are open to whoever reaches the
// API.
func (r Role) Open() bool { return r.Auth == "none" }

// checker proves a request for one role, in constant time.
type checker struct {
	name       string
	auth       string
	key        [32]byte // sha256 of the API key
	user, pass [32]byte // sha256 of each (hashed apart: "ab"+"c" is not "a"+"bc")
}

func newChecker(r Role) checker {
	return checker{name: r.Name, auth: r.Auth, key: sha256.Sum256([]byte(r.APIKey)),
		user: sha256.Sum256([]byte(r.Username)), pass: sha256.Sum256([]byte(r.Password))}
}

func (c checker) allows(w http.ResponseWriter, r *http.Request) bool {
	switch c.auth {
	case "none":
		return true
	case "apikey":
		got := r.Header.Get("X-API-Key")
		if got == "" {
			got = r.URL.Query().Get("api_key")
		}
		if got == "" {
			return false
		}
		h := sha256.Sum256([]byte(got))
		return subtle.ConstantTimeCompare(h[:], c.key[:]) == 1
	case "basic":
		u, p, ok := r.BasicAuth()
		if !ok {
			w.Header().Set("WWW-Authenticate", `Basic realm="vpnfwd", charset="UTF-8"`)
			return false
		}
		hu, hp := sha256.Sum256([]byte(u)), sha256.Sum256([]byte(p))
		return subtle.ConstantTimeCompare(hu[:], c.user[:])&subtle.ConstantTimeCompare(hp[:], c.pass[:]) == 1
	}
	return false
}

// roleTable maps "METHOD /path" to the roles that may call it.
type roleTable map[string][]checker

func newRoleTable(roles []Role) roleTable {
	t := roleTable{}
	for _, r := range roles {
		for _, route := range r.Routes {
			t[route] = append(t[route], newChecker(r))
		}
	}
	return t
}

// errNoRole: no role names the route.
var errNoRole = errors.New("no role may call this route")

// allow says whether one of the route's roles lets the request through.
func (t roleTable) allow(w http.ResponseWriter, r *http.Request) error {
	cs := t[r.Method+" "+r.URL.Path]
	if len(cs) == 0 {
		return errNoRole
	}
	for _, c := range cs {
		if c.allows(w, r) {
			return nil
		}
	}
	return errors.New("wrong or missing credentials")
}
