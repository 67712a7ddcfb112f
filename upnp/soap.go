package upnp

import (
	"bytes"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"strings"
)

// maxBody bounds a SOAP request's body.
const maxBody = 16 << 10

// Call is one SOAP action: its service type (the action element's
// namespace), its name, and its arguments by name.
type Call struct {
	Service string
	Action  string
	Args    map[string]string
}

// errNotSOAP: the body is not one SOAP action (402 Invalid Args).
var errNotSOAP = errors.New("not a SOAP action")

// ParseSOAP reads a SOAP envelope holding one action of flat arguments
// (as UPnP control sends). A document with a DTD or entity declaration,
// more than 32 arguments, an argument over 1 KiB, nesting, or anything
// over maxBody is refused. encoding/xml expands no entity but XML's five.
func ParseSOAP(body []byte) (Call, error) {
	if len(body) > maxBody {
		return Call{}, fmt.Errorf("%w: over %d bytes", errNotSOAP, maxBody)
	}
	d := xml.NewDecoder(bytes.NewReader(body))
	d.Strict = true
	var c Call
	var arg string       // the argument being read
	var val bytes.Buffer // its text
	depth := 0           // 1: Envelope, 2: Body, 3: the action, 4: an argument
	for {
		tok, err := d.Token()
		if err == io.EOF {
			break
		}
		if err != nil {
			return Call{}, fmt.Errorf("%w: %v", errNotSOAP, err)
		}
		switch t := tok.(type) {
		case xml.Directive:
			return Call{}, fmt.Errorf("%w: a DTD or declaration", errNotSOAP)
		case xml.StartElement:
			depth++
			switch depth {
			case 1:
				if t.Name.Local != "Envelope" {
					return Call{}, fmt.Errorf("%w: no Envelope", errNotSOAP)
				}
			case 2:
				if t.Name.Local != "Body" && t.Name.Local != "Header" {
					return Call{}, fmt.Errorf("%w: %s in the Envelope", errNotSOAP, t.Name.Local)
				}
				if t.Name.Local == "Header" {
					if err := d.Skip(); err != nil {
						return Call{}, fmt.Errorf("%w: %v", errNotSOAP, err)
					}
					depth--
				}
			case 3:
				if c.Action != "" {
					return Call{}, fmt.Errorf("%w: two actions", errNotSOAP)
				}
				c.Service, c.Action, c.Args = t.Name.Space, t.Name.Local, map[string]string{}
			case 4:
				if len(c.Args) >= 32 {
					return Call{}, fmt.Errorf("%w: over 32 arguments", errNotSOAP)
				}
				arg = t.Name.Local
				val.Reset()
			default:
				return Call{}, fmt.Errorf("%w: nested arguments", errNotSOAP)
			}
		case xml.CharData:
			if depth == 4 {
				if val.Len()+len(t) > 1024 {
					return Call{}, fmt.Errorf("%w: argument %s over 1 KiB", errNotSOAP, arg)
				}
				val.Write(t)
			}
		case xml.EndElement:
			if depth == 4 {
				c.Args[arg] = strings.TrimSpace(val.String())
			}
			depth--
		}
	}
	if c.Action == "" {
		return Call{}, fmt.Errorf("%w: no action", errNotSOAP)
	}
	return c, nil
}

// soapAction parses a SOAPACTION header, "service#action" in quotes.
func soapAction(h string) (service, action string, ok bool) {
	h = strings.Trim(strings.TrimSpace(h), `"`)
	i := strings.LastIndexByte(h, '#')
	if i < 0 {
		return "", "", false
	}
	return h[:i], h[i+1:], true
}

// envelope wraps a response body, as miniupnpd does.
func envelope(body string) []byte {
	return []byte(`<?xml version="1.0"?>` + "\r\n" +
		`<s:Envelope xmlns:s="http://schemas.xmlsoap.org/soap/envelope/" s:encodingStyle="http://schemas.xmlsoap.org/soap/encoding/"><s:Body>` +
		body + "</s:Body></s:Envelope>\r\n")
}

// response is an action's response with its arguments in order.
func response(c Call, args ...string) []byte {
	var b strings.Builder
	fmt.Fprintf(&b, `<u:%sResponse xmlns:u="%s">`, c.Action, escape(c.Service))
	for i := 0; i+1 < len(args); i += 2 {
		fmt.Fprintf(&b, "<%s>%s</%s>", args[i], escape(args[i+1]), args[i])
	}
	fmt.Fprintf(&b, "</u:%sResponse>", c.Action)
	return envelope(b.String())
}

// upnpError is a UPnP error code and its description.
type upnpError struct {
	code int
	desc string
}

// The UPnP errors the IGD answers with.
var (
	errInvalidAction   = upnpError{401, "Invalid Action"}
	errInvalidArgs     = upnpError{402, "Invalid Args"}
	errActionFailed    = upnpError{501, "Action Failed"}
	errNotAuthorized   = upnpError{606, "Action not authorized"}
	errArrayIndex      = upnpError{713, "SpecifiedArrayIndexInvalid"}
	errNoSuchEntry     = upnpError{714, "NoSuchEntryInArray"}
	errWildcardExtPort = upnpError{716, "WildCardNotPermittedInExtPort"}
	errConflict        = upnpError{718, "ConflictInMappingEntry"}
	errRemoteHost      = upnpError{726, "RemoteHostOnlySupportsWildcard"}
	errNoPortMaps      = upnpError{728, "NoPortMapsAvailable"}
	errWildcardIntPort = upnpError{732, "WildCardNotPermittedInIntPort"}
)

// fault is the SOAP fault carrying e, as miniupnpd writes it.
func fault(e upnpError) []byte {
	return envelope(fmt.Sprintf(`<s:Fault><faultcode>s:Client</faultcode><faultstring>UPnPError</faultstring><detail>`+
		`<UPnPError xmlns="urn:schemas-upnp-org:control-1-0"><errorCode>%d</errorCode><errorDescription>%s</errorDescription></UPnPError>`+
		`</detail></s:Fault>`, e.code, e.desc))
}

func escape(s string) string {
	var b strings.Builder
	xml.EscapeText(&b, []byte(s))
	return b.String()
}
