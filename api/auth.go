package api

import (
	"crypto/sha256"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
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
		if r.APIKey == "" {
			return fmt.Errorf("role %q: auth \"apikey\" needs apikey = \"...\"", r.Name)
		}
	case "basic":
		if r.Username == "" || r.Password == "" {
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

// ReadAuthFile reads gluetun's auth file: [[roles]] tables, nothing else
// (an unknown key is an error, as gluetun's strict decoding makes it).
// defaultRole is HTTP_CONTROL_SERVER_AUTH_DEFAULT_ROLE, JSON such as
// {"auth":"apikey","apikey":"..."}: it covers every route no role names
// ("" or an empty auth: none).
func ReadAuthFile(path, defaultRole string) ([]Role, error) {
	var roles []Role
	if path != "" {
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
		roles = f.Roles
	}
	for i := range roles {
		if err := roles[i].validate(); err != nil {
			return nil, fmt.Errorf("api auth file %s: %w", path, err)
		}
	}
	if defaultRole != "" {
		var d Role
		dec := json.NewDecoder(strings.NewReader(defaultRole))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&d); err != nil {
			return nil, fmt.Errorf("api.auth_default_role (--api-auth-default-role): %w (want JSON such as {\"auth\":\"apikey\",\"apikey\":\"...\"})", err)
		}
		if d.Auth != "" {
			if d.Name == "" {
				d.Name = "default"
			}
			if err := d.validate(); err != nil {
				return nil, fmt.Errorf("api.auth_default_role (--api-auth-default-role): %w", err)
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
			roles = append(roles, d)
		}
	}
	return roles, nil
}

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
