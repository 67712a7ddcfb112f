package daemon

import (
	"log/slog"
	"strings"
	"testing"

	"github.com/vpnfwd/vpnfwd/config"
)

// A hook whose program is not there stops vpnfwd at start, naming the
// setting, the command and the program; a down command only is checked
// too.
func TestHookProgramCheckedAtStart(t *testing.T) {
	tests := []struct {
		publish []config.Publish
		want    []string // "" : no error
	}{
		{[]config.Publish{{Type: "exec", Command: "/bin/sh -c 'wget -O- http://127.0.0.1:8080/'"}}, nil},
		{[]config.Publish{{Type: "exec", Command: "/no/such/sh -c 'wget'"}}, []string{"--on-port (gluetun's VPN_PORT_FORWARDING_UP_COMMAND): program /no/such/sh not found"}},
		{[]config.Publish{{Type: "exec", On: "lost", Command: "no-such-hook {{PORT}}"}}, []string{"--on-port-lost (gluetun's VPN_PORT_FORWARDING_DOWN_COMMAND): program no-such-hook not found in PATH"}},
	}
	for _, tt := range tests {
		cfg := config.Defaults()
		cfg.Publish = tt.publish
		_, err := buildConsumers(&cfg, "tun0", slog.New(slog.DiscardHandler))
		if tt.want == nil {
			if err != nil {
				t.Errorf("%+v: %v", tt.publish, err)
			}
			continue
		}
		for _, w := range tt.want {
			if err == nil || !strings.Contains(err.Error(), w) {
				t.Errorf("%+v: error %v, want %q in it", tt.publish, err, w)
			}
		}
	}
}
