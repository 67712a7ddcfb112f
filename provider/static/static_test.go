package static

import (
	"strings"
	"testing"

	"github.com/vpnfwd/vpnfwd/config"
	"github.com/vpnfwd/vpnfwd/provider"
)

func TestVariants(t *testing.T) {
	if _, err := AirVPN.New(provider.Env{Config: config.Provider{Ports: []int{80}}}); err == nil || !strings.Contains(err.Error(), "1024 or above") {
		t.Errorf("AirVPN port 80: %v", err)
	}
	if _, err := AirVPN.New(provider.Env{}); err == nil || !strings.Contains(err.Error(), "Client Area > Ports") {
		t.Errorf("AirVPN no port: %v", err)
	}
	if _, err := TorGuard.New(provider.Env{Config: config.Provider{Ports: []int{2000, 3000}}}); err != nil {
		t.Error(err)
	}
}
