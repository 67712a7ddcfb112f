package forward

import (
	"crypto/subtle"
	"encoding/base64"
	"strings"
)

// Credentials are the username and password the proxies require (SOCKS5
// RFC 1929, HTTP basic). The zero value requires none: keep such a proxy
// on loopback.
type Credentials struct {
	Username, Password string
}

// Required reports whether the proxies ask for credentials.
func (c Credentials) Required() bool { return c.Username != "" || c.Password != "" }

// match compares in constant time.
func (c Credentials) match(user, pass string) bool {
	u := subtle.ConstantTimeCompare([]byte(user), []byte(c.Username))
	p := subtle.ConstantTimeCompare([]byte(pass), []byte(c.Password))
	return u&p == 1
}

// matchBasic checks a Proxy-Authorization header ("Basic base64(u:p)").
func (c Credentials) matchBasic(h string) bool {
	v, ok := strings.CutPrefix(h, "Basic ")
	if !ok {
		return false
	}
	raw, err := base64.StdEncoding.DecodeString(strings.TrimSpace(v))
	if err != nil {
		return false
	}
	user, pass, ok := strings.Cut(string(raw), ":")
	return ok && c.match(user, pass)
}
