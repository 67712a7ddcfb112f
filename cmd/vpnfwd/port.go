package main

import (
	"context"
	"errors"
	"fmt"
	"net/http"
)

// runPort prints the forwarded port and nothing else; exit 1 when none is
// held or the held one is known dead.
func runPort(ctx context.Context, env *cliEnv, args []string) error {
	fs := newFlagSet(env, "port", "[--api ADDR]")
	addr, tok := apiFlags(fs, env)
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	c, err := newAPIClient(*addr, *tok)
	if err != nil {
		return err
	}
	var ans struct {
		Port  int    `json:"port"`
		Error string `json:"error"`
		Dead  string `json:"dead"`
	}
	code, err := c.get(ctx, "/v1/port", &ans)
	if code == http.StatusUnauthorized && *tok == "" {
		// An API behind gluetun's auth file, and no token here (a
		// container's health check): /healthz is open and names the port.
		return portFromHealth(ctx, env, c)
	}
	if err != nil {
		return err
	}
	if code != http.StatusOK || ans.Port == 0 {
		msg := ans.Error
		if msg == "" {
			msg = fmt.Sprintf("no port (HTTP %d)", code)
		}
		return &exitError{1, errors.New(msg)}
	}
	if ans.Dead != "" {
		return &exitError{1, fmt.Errorf("port %d is held but dead: %s (vpnfwd is mapping it again)", ans.Port, ans.Dead)}
	}
	fmt.Fprintln(env.stdout, ans.Port)
	return nil
}

// portFromHealth reads the port from /healthz ("ok: port N, ..."; 503 and
// the reason when there is none or it is dead).
func portFromHealth(ctx context.Context, env *cliEnv, c *apiClient) error {
	code, body, err := c.text(ctx, "/healthz")
	if err != nil {
		return err
	}
	var port int
	if code != http.StatusOK {
		return &exitError{1, errors.New(body)}
	}
	if _, err := fmt.Sscanf(body, "ok: port %d", &port); err != nil || port == 0 {
		return &exitError{1, fmt.Errorf("no port in /healthz's answer %q", body)}
	}
	fmt.Fprintln(env.stdout, port)
	return nil
}
