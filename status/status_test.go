package status

import "testing"

// The health rule: up, the last check answered, a port held and not
// known dead; each failure says why.
func TestUnhealthy(t *testing.T) {
	up := Tunnel{State: "up"}
	for _, c := range []struct {
		s    Status
		want string
	}{
		{Status{Tunnel: up, Port: Port{Port: 40001}}, ""},
		{Status{Tunnel: Tunnel{State: "down"}, Port: Port{Port: 40001}}, "tunnel down"},
		{Status{Tunnel: Tunnel{State: "up", FailedChecks: 1}, Port: Port{Port: 40001}}, "the last liveness check through the tunnel got nothing back"},
		{Status{Tunnel: up}, "no forwarded port yet"},
		{Status{Tunnel: up, Port: Port{Error: "NAT-PMP refused"}}, "no forwarded port: NAT-PMP refused"},
		{Status{Tunnel: up, Port: Port{Port: 40001, Dead: "gateway forgot it"}}, "port 40001 is dead: gateway forgot it"},
	} {
		if got := c.s.Unhealthy(); got != c.want || c.s.Healthy() != (c.want == "") {
			t.Errorf("%+v: %q, want %q", c.s, got, c.want)
		}
	}
}
