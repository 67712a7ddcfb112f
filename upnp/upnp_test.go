package upnp

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/vpnfwd/vpnfwd/portmap"
)

var public = netip.MustParseAddr("198.51.100.9")

// testIGD is an IGD over a real table holding port 40001; the requesting
// user is what owner says (one per test client).
func testIGD(t *testing.T) (*portmap.Server, *httptest.Server, *uint32) {
	t.Helper()
	pm := portmap.New(portmap.Config{})
	pm.SetPorts(public, []portmap.Slot{{Public: 40001, Local: 40001}})
	uid := new(uint32)
	s := New(Config{Gateway: pm, Owner: func(client, server netip.AddrPort) (uint32, bool) { return *uid, true },
		Local: func(a netip.Addr) bool { return a.IsLoopback() || a == netip.MustParseAddr("10.2.0.2") }})
	hs := httptest.NewServer(s.Handler())
	t.Cleanup(hs.Close)
	return pm, hs, uid
}

// soap posts one action to the IGD:v WANIPConnection and returns the
// HTTP status and the response's UPnP error code or its arguments.
func soap(t *testing.T, hs *httptest.Server, v int, action string, args ...string) (int, string) {
	t.Helper()
	svc := fmt.Sprintf("urn:schemas-upnp-org:service:WANIPConnection:%d", v)
	var b strings.Builder
	fmt.Fprintf(&b, `<?xml version="1.0"?><s:Envelope xmlns:s="http://schemas.xmlsoap.org/soap/envelope/" s:encodingStyle="http://schemas.xmlsoap.org/soap/encoding/"><s:Body><u:%s xmlns:u="%s">`, action, svc)
	for i := 0; i+1 < len(args); i += 2 {
		fmt.Fprintf(&b, "<%s>%s</%s>", args[i], args[i+1], args[i])
	}
	fmt.Fprintf(&b, "</u:%s></s:Body></s:Envelope>", action)
	req, _ := http.NewRequest("POST", hs.URL+"/ctl/IPConn", strings.NewReader(b.String()))
	req.Header.Set("SOAPAction", `"`+svc+"#"+action+`"`)
	req.Header.Set("Content-Type", `text/xml; charset="utf-8"`)
	resp, err := hs.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if m := regexp.MustCompile(`<errorCode>(\d+)</errorCode>`).FindSubmatch(body); m != nil {
		return resp.StatusCode, string(m[1])
	}
	return resp.StatusCode, string(body)
}

func add(port, internal, client string) []string {
	return []string{"NewRemoteHost", "", "NewExternalPort", port, "NewProtocol", "TCP", "NewInternalPort", internal,
		"NewInternalClient", client, "NewEnabled", "1", "NewPortMappingDescription", "app", "NewLeaseDuration", "0"}
}

// The actions and their answers, in the order a client would send them,
// each with the UPnP error (or a piece of the answer) it must get.
func TestControl(t *testing.T) {
	_, hs, uid := testIGD(t)
	*uid = 1000
	steps := []struct {
		what   string
		v      int
		action string
		args   []string
		uid    uint32
		want   string // an error code, or text the answer holds
	}{
		{"external IP", 1, "GetExternalIPAddress", nil, 1000, "<NewExternalIPAddress>198.51.100.9</NewExternalIPAddress>"},
		{"status", 1, "GetStatusInfo", nil, 1000, "<NewConnectionStatus>Connected</NewConnectionStatus>"},
		{"connection type", 2, "GetConnectionTypeInfo", nil, 1000, "<NewConnectionType>IP_Routed</NewConnectionType>"},
		{"another external port", 1, "AddPortMapping", add("7000", "7000", "127.0.0.1"), 1000, "718"},
		{"wildcard external port", 1, "AddPortMapping", add("0", "7000", "127.0.0.1"), 1000, "716"},
		{"another host (IGD:1)", 1, "AddPortMapping", add("40001", "7000", "192.168.1.20"), 1000, "718"},
		{"another host (IGD:2)", 2, "AddPortMapping", add("40001", "7000", "192.168.1.20"), 1000, "606"},
		{"bad protocol", 1, "AddPortMapping", []string{"NewExternalPort", "40001", "NewProtocol", "SCTP", "NewInternalPort", "7000"}, 1000, "402"},
		{"a remote host", 1, "AddPortMapping", append(add("40001", "7000", "127.0.0.1"), "NewRemoteHost", "203.0.113.1"), 1000, "726"},
		{"AddAny on IGD:1", 1, "AddAnyPortMapping", add("7000", "7000", "127.0.0.1"), 1000, "401"},
		{"the held port", 1, "AddPortMapping", add("40001", "7000", "10.2.0.2"), 1000, "<u:AddPortMappingResponse"},
		{"the entry", 1, "GetSpecificPortMappingEntry", []string{"NewRemoteHost", "", "NewExternalPort", "40001", "NewProtocol", "TCP"}, 1000,
			"<NewInternalPort>7000</NewInternalPort><NewInternalClient>127.0.0.1</NewInternalClient><NewEnabled>1</NewEnabled><NewPortMappingDescription>app</NewPortMappingDescription><NewLeaseDuration>0</NewLeaseDuration>"},
		{"no UDP entry", 1, "GetSpecificPortMappingEntry", []string{"NewExternalPort", "40001", "NewProtocol", "UDP"}, 1000, "714"},
		{"index 0", 1, "GetGenericPortMappingEntry", []string{"NewPortMappingIndex", "0"}, 1000, "<NewExternalPort>40001</NewExternalPort><NewProtocol>TCP</NewProtocol><NewInternalPort>7000</NewInternalPort>"},
		{"index 1", 1, "GetGenericPortMappingEntry", []string{"NewPortMappingIndex", "1"}, 1000, "713"},
		{"another user's AddAny", 2, "AddAnyPortMapping", add("7001", "7001", "127.0.0.1"), 1001, "728"},
		{"another user replacing it", 1, "AddPortMapping", add("40001", "7000", "127.0.0.1"), 1001, "718"},
		{"another user's delete", 1, "DeletePortMapping", []string{"NewRemoteHost", "", "NewExternalPort", "40001", "NewProtocol", "TCP"}, 1001, "606"},
		{"the owner's delete", 1, "DeletePortMapping", []string{"NewRemoteHost", "", "NewExternalPort", "40001", "NewProtocol", "TCP"}, 1000, "<u:DeletePortMappingResponse"},
		{"delete again", 1, "DeletePortMapping", []string{"NewRemoteHost", "", "NewExternalPort", "40001", "NewProtocol", "TCP"}, 1000, "714"},
		{"AddAny on IGD:2", 2, "AddAnyPortMapping", add("7001", "7001", ""), 1001, "<NewReservedPort>40001</NewReservedPort>"},
		{"an unknown action", 1, "ForceTermination", nil, 1000, "401"},
	}
	for _, st := range steps {
		*uid = st.uid
		code, got := soap(t, hs, st.v, st.action, st.args...)
		wantCode := http.StatusOK
		if len(st.want) == 3 {
			wantCode = http.StatusInternalServerError
		}
		if code != wantCode || !strings.Contains(got, st.want) {
			t.Errorf("%s: HTTP %d %q, want %d %q", st.what, code, got, wantCode, st.want)
		}
	}
}

// A body that is not one SOAP action, or that carries a DTD (entities),
// is refused with 402; a body over 16 KiB is refused unread.
func TestControlRefusesBadBodies(t *testing.T) {
	_, hs, _ := testIGD(t)
	for _, body := range []string{
		"",
		"<a/>",
		`<?xml version="1.0"?><!DOCTYPE s [<!ENTITY x SYSTEM "file:///etc/passwd">]><s:Envelope xmlns:s="http://schemas.xmlsoap.org/soap/envelope/"><s:Body><u:GetExternalIPAddress xmlns:u="urn:schemas-upnp-org:service:WANIPConnection:1">&x;</u:GetExternalIPAddress></s:Body></s:Envelope>`,
		`<s:Envelope xmlns:s="http://schemas.xmlsoap.org/soap/envelope/"><s:Body><u:AddPortMapping xmlns:u="urn:schemas-upnp-org:service:WANIPConnection:1"><a><b>1</b></a></u:AddPortMapping></s:Body></s:Envelope>`,
		strings.Repeat("<a>", 20000),
	} {
		resp, err := hs.Client().Post(hs.URL+"/ctl/IPConn", "text/xml", strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if len(body) > maxBody {
			if resp.StatusCode != http.StatusRequestEntityTooLarge {
				t.Errorf("%d bytes: HTTP %d", len(body), resp.StatusCode)
			}
			continue
		}
		if resp.StatusCode != 500 || !strings.Contains(string(b), "<errorCode>402</errorCode>") {
			t.Errorf("%.40q: HTTP %d %s", body, resp.StatusCode, b)
		}
	}
}

// The descriptions name the IGD of each version, its WANIPConnection
// and the control URL the handler answers on.
func TestDescriptions(t *testing.T) {
	_, hs, _ := testIGD(t)
	for v, path := range map[int]string{1: "/rootDesc.xml", 2: "/rootDesc2.xml"} {
		resp, err := hs.Client().Get(hs.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		for _, want := range []string{
			fmt.Sprintf("<deviceType>urn:schemas-upnp-org:device:InternetGatewayDevice:%d</deviceType>", v),
			fmt.Sprintf("<serviceType>urn:schemas-upnp-org:service:WANIPConnection:%d</serviceType>", v),
			"<controlURL>/ctl/IPConn</controlURL>",
			"<serviceType>urn:schemas-upnp-org:service:WANCommonInterfaceConfig:1</serviceType>",
		} {
			if !strings.Contains(string(b), want) {
				t.Errorf("%s lacks %s:\n%s", path, want, b)
			}
		}
	}
}

// M-SEARCH is answered for what it asks, with the LOCATION of that
// version's description; anything else is not.
func TestSSDP(t *testing.T) {
	pm := portmap.New(portmap.Config{})
	s := New(Config{Gateway: pm})
	pc, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() { done <- s.Serve(ctx, l, pc) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Error(err)
		}
	}()
	c, err := net.Dial("udp4", pc.LocalAddr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	search := func(st string) string {
		return "M-SEARCH * HTTP/1.1\r\nHOST: 239.255.255.250:1900\r\nMAN: \"ssdp:discover\"\r\nMX: 2\r\nST: " + st + "\r\n\r\n"
	}
	loc := "http://" + l.Addr().String()
	for _, tc := range []struct {
		req  string
		want []string // LOCATIONs, in order
	}{
		{search("urn:schemas-upnp-org:device:InternetGatewayDevice:1"), []string{loc + "/rootDesc.xml"}},
		{search("urn:schemas-upnp-org:service:WANIPConnection:2"), []string{loc + "/rootDesc2.xml"}},
		{search("upnp:rootdevice"), []string{loc + "/rootDesc.xml", loc + "/rootDesc2.xml"}},
		{"NOTIFY * HTTP/1.1\r\nHOST: 239.255.255.250:1900\r\nNT: upnp:rootdevice\r\n\r\n", nil},
		{search("urn:schemas-upnp-org:device:MediaServer:1"), nil},
		{search("ssdp:all"), nil}, // checked by count below
	} {
		c.Write([]byte(tc.req))
		var got []string
		buf := make([]byte, 2048)
		for {
			c.SetReadDeadline(time.Now().Add(300 * time.Millisecond))
			n, err := c.Read(buf)
			if err != nil {
				break
			}
			if m := regexp.MustCompile(`(?m)^LOCATION: (\S+)\r$`).FindSubmatch(buf[:n]); m != nil {
				got = append(got, string(m[1]))
			}
		}
		if strings.Contains(tc.req, "ssdp:all") {
			if len(got) != 2*len(s.targets(1)) {
				t.Errorf("ssdp:all: %d answers", len(got))
			}
			continue
		}
		if strings.Join(got, " ") != strings.Join(tc.want, " ") {
			t.Errorf("%.60q: answers %q, want %q", tc.req, got, tc.want)
		}
	}
}

func TestParseMSearch(t *testing.T) {
	for _, tc := range []struct {
		in string
		st string
		ok bool
	}{
		{"M-SEARCH * HTTP/1.1\r\nHOST: 239.255.255.250:1900\r\nST: ssdp:all\r\nMAN: \"ssdp:discover\"\r\nMX: 3\r\n\r\n", "ssdp:all", true},
		{"m-search * http/1.1\r\nst:upnp:rootdevice\r\nman:\"ssdp:discover\"\r\n\r\n", "upnp:rootdevice", true},
		{"M-SEARCH * HTTP/1.1\r\nST: ssdp:all\r\n\r\n", "", false}, // no MAN
		{"NOTIFY * HTTP/1.1\r\nNT: upnp:rootdevice\r\nNTS: ssdp:alive\r\n\r\n", "", false},
		{"HTTP/1.1 200 OK\r\nST: upnp:rootdevice\r\n\r\n", "", false},
		{"M-SEARCH * HTTP/1.1\r\nbroken line\r\n\r\n", "", false},
	} {
		st, ok := ParseMSearch([]byte(tc.in))
		if st != tc.st || ok != tc.ok {
			t.Errorf("%q: %q %v, want %q %v", tc.in, st, ok, tc.st, tc.ok)
		}
	}
}

func FuzzParseMSearch(f *testing.F) {
	f.Add([]byte("M-SEARCH * HTTP/1.1\r\nHOST: 239.255.255.250:1900\r\nST: ssdp:all\r\nMAN: \"ssdp:discover\"\r\nMX: 3\r\n\r\n"))
	f.Add([]byte("NOTIFY * HTTP/1.1\r\n\r\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		st, ok := ParseMSearch(b)
		if ok && (st == "" || len(st) > 256) {
			t.Fatalf("accepted ST %q", st)
		}
	})
}

func FuzzParseSOAP(f *testing.F) {
	f.Add([]byte(`<?xml version="1.0"?><s:Envelope xmlns:s="http://schemas.xmlsoap.org/soap/envelope/"><s:Body><u:AddPortMapping xmlns:u="urn:schemas-upnp-org:service:WANIPConnection:1"><NewExternalPort>40001</NewExternalPort><NewProtocol>TCP</NewProtocol></u:AddPortMapping></s:Body></s:Envelope>`))
	f.Add([]byte(`<!DOCTYPE a [<!ENTITY b "c">]><a>&b;</a>`))
	f.Fuzz(func(t *testing.T, b []byte) {
		c, err := ParseSOAP(b)
		if err != nil {
			return
		}
		if c.Action == "" || len(c.Args) > 32 {
			t.Fatalf("accepted %+v", c)
		}
		for k, v := range c.Args {
			if len(v) > 1024 {
				t.Fatalf("argument %s of %d bytes", k, len(v))
			}
		}
	})
}

// Connections from addresses that are not the namespace's own are closed
// unanswered.
func TestServeOnlyLocalPeers(t *testing.T) {
	pm := portmap.New(portmap.Config{})
	s := New(Config{Gateway: pm, Local: func(netip.Addr) bool { return false }})
	pc, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() { done <- s.Serve(ctx, l, pc) }()
	defer func() { cancel(); <-done }()
	c := &http.Client{Timeout: 5 * time.Second}
	if resp, err := c.Get("http://" + l.Addr().String() + "/rootDesc.xml"); err == nil {
		resp.Body.Close()
		t.Fatalf("a stranger's request answered: %s", resp.Status)
	}
}

// SSDP answers are limited to 100 a second (as many at once): a flood of
// searches is not a flood of answers.
func TestSSDPAllowance(t *testing.T) {
	now := time.Unix(1_000_000, 0)
	s := New(Config{Gateway: portmap.New(portmap.Config{}), Now: func() time.Time { return now }})
	all := s.matching("ssdp:all")
	granted := 0
	for s.allow(all) {
		granted += all
	}
	if granted > 100 || granted < 100-all {
		t.Fatalf("%d answers at once, want at most 100", granted)
	}
	now = now.Add(time.Second)
	if !s.allow(all) {
		t.Fatal("no answer a second later")
	}
}
