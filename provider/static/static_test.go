package static

import (
	"strings"
	"testing"

	"github.com/vpnfwd/vpnfwd/provider"
)

func TestVariants(t *testing.T) {
	if _, err := AirVPN.New(provider.Env{Settings: provider.Settings{"ports": "80"}}); err == nil || !strings.Contains(err.Error(), "1024 or above") {
		t.Errorf("AirVPN port 80: %v", err)
	}
	if _, err := AirVPN.New(provider.Env{}); err == nil || !strings.Contains(err.Error(), "Client Area > Ports") {
		t.Errorf("AirVPN no port: %v", err)
	}
	if _, err := TorGuard.New(provider.Env{Settings: provider.Settings{"ports": []any{int64(2000), int64(3000)}}}); err != nil {
		t.Error(err)
	}
}
