package provider

import (
	"crypto/tls"
	"crypto/x509"
	"net/http"
	"time"
)

// HTTPClient makes a client that dials with d. With roots and serverName it
// trusts only roots and checks serverName instead of the URL's host (PIA's
// servers); with nil roots it uses the system trust store (so
// SSL_CERT_FILE works).
func HTTPClient(d Dialer, roots *x509.CertPool, serverName string) *http.Client {
	tc := &tls.Config{RootCAs: roots, ServerName: serverName, MinVersion: tls.VersionTLS12}
	return &http.Client{Timeout: 20 * time.Second, Transport: &http.Transport{
		Proxy: nil, DialContext: d.DialContext, TLSClientConfig: tc, TLSHandshakeTimeout: 10 * time.Second,
	}}
}
