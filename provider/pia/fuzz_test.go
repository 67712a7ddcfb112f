package pia

import (
	"encoding/base64"
	"testing"
)

func FuzzParsers(f *testing.F) {
	f.Add([]byte(`{"regions":[{"id":"x","port_forward":true,"servers":{"wg":[{"ip":"1.2.3.4","cn":"a"}]}}]}` + "\n\nc2ln\n"))
	f.Add([]byte(`{"status":"OK","payload":"` + base64.StdEncoding.EncodeToString([]byte(`{"port":1,"expires_at":"2030-01-01T00:00:00Z"}`)) + `","signature":"x"}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		if l, err := ParseServerList(b, nil); err == nil && len(l.Regions) == 0 {
			t.Fatal("accepted a list without regions")
		}
		if s, err := parseSignature(b); err == nil && s.Port == 0 {
			t.Fatal("accepted port 0")
		}
		if p, _, err := decodePayload(string(b)); err == nil && p == 0 {
			t.Fatal("accepted port 0")
		}
	})
}
