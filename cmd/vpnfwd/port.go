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
