package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"strings"
)

func newLogger(w io.Writer, level string) (*slog.Logger, error) {
	var l slog.Level
	switch strings.ToLower(level) {
	case "", "info":
		l = slog.LevelInfo
	case "debug":
		l = slog.LevelDebug
	case "warn", "warning":
		l = slog.LevelWarn
	case "error":
		l = slog.LevelError
	default:
		return nil, fmt.Errorf("log level %q: want debug, info, warn or error", level)
	}
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: l})), nil
}

// errorTap passes records on and remembers the last error-level one, so
// status can say why there is no port.
type errorTap struct {
	slog.Handler
	set func(string)
}

func (e errorTap) Handle(ctx context.Context, r slog.Record) error {
	if r.Level >= slog.LevelError {
		msg := r.Message
		r.Attrs(func(a slog.Attr) bool {
			if a.Key == "err" {
				msg += ": " + a.Value.String()
			}
			return true
		})
		e.set(msg)
	}
	return e.Handler.Handle(ctx, r)
}

func (e errorTap) WithAttrs(as []slog.Attr) slog.Handler {
	return errorTap{e.Handler.WithAttrs(as), e.set}
}

func (e errorTap) WithGroup(g string) slog.Handler { return errorTap{e.Handler.WithGroup(g), e.set} }
