package api

import (
	"fmt"
	"strings"

	"github.com/vpnfwd/vpnfwd/secret"
)

// ReadToken reads the API token from a file (trimmed; empty is an error);
// no path, no token.
func ReadToken(path string) (string, error) {
	if path == "" {
		return "", nil
	}
	t, err := secret.Read("", path)
	if err != nil {
		return "", fmt.Errorf("API token: %w", err)
	}
	t = strings.TrimSpace(t)
	if t == "" {
		return "", fmt.Errorf("API token file %s is empty", path)
	}
	return t, nil
}
