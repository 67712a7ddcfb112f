package upnp

import (
	"fmt"
)

// Control URLs of the two services (as miniupnpd names them).
const (
	ipcControl = "/ctl/IPConn"
	cifControl = "/ctl/CmnIfCfg"
)

// description is IGD version v's root device description, shaped as
// miniupnpd's rootDesc.xml: the IGD, its WANDevice with the
// WANCommonInterfaceConfig service, and that device's
// WANConnectionDevice with the WANIPConnection service.
func (s *Server) description(v int) []byte {
	ver := fmt.Sprint(v)
	root, wan, conn := s.udn(3*(v-1)), s.udn(3*(v-1)+1), s.udn(3*(v-1)+2)
	return fmt.Appendf(nil, `<?xml version="1.0"?>
<root xmlns="urn:schemas-upnp-org:device-1-0"><specVersion><major>1</major><minor>%[13]d</minor></specVersion><device>`+
		`<deviceType>%[2]s%[1]s</deviceType><friendlyName>vpnfwd</friendlyName><manufacturer>vpnfwd</manufacturer>`+
		`<manufacturerURL>https://github.com/vpnfwd/vpnfwd</manufacturerURL><modelDescription>vpnfwd: the VPN's forwarded port for apps that ask</modelDescription>`+
		`<modelName>vpnfwd</modelName><modelNumber>%[1]s</modelNumber><modelURL>https://github.com/vpnfwd/vpnfwd</modelURL><serialNumber>00000000</serialNumber>`+
		`<UDN>%[3]s</UDN><deviceList><device>`+
		`<deviceType>%[4]s%[1]s</deviceType><friendlyName>WANDevice</friendlyName><manufacturer>vpnfwd</manufacturer><manufacturerURL>https://github.com/vpnfwd/vpnfwd</manufacturerURL>`+
		`<modelDescription>WAN Device</modelDescription><modelName>WAN Device</modelName><modelNumber>%[1]s</modelNumber><modelURL>https://github.com/vpnfwd/vpnfwd</modelURL><serialNumber>00000000</serialNumber>`+
		`<UDN>%[5]s</UDN><UPC>000000000000</UPC><serviceList><service><serviceType>%[6]s</serviceType><serviceId>urn:upnp-org:serviceId:WANCommonIFC1</serviceId>`+
		`<SCPDURL>/WANCfg.xml</SCPDURL><controlURL>%[7]s</controlURL><eventSubURL>/evt/CmnIfCfg</eventSubURL></service></serviceList><deviceList><device>`+
		`<deviceType>%[8]s%[1]s</deviceType><friendlyName>WANConnectionDevice</friendlyName><manufacturer>vpnfwd</manufacturer><manufacturerURL>https://github.com/vpnfwd/vpnfwd</manufacturerURL>`+
		`<modelDescription>vpnfwd</modelDescription><modelName>vpnfwd</modelName><modelNumber>%[1]s</modelNumber><modelURL>https://github.com/vpnfwd/vpnfwd</modelURL><serialNumber>00000000</serialNumber>`+
		`<UDN>%[9]s</UDN><UPC>000000000000</UPC><serviceList><service><serviceType>%[10]s%[1]s</serviceType><serviceId>urn:upnp-org:serviceId:WANIPConn1</serviceId>`+
		`<SCPDURL>/WANIPCn%[11]s.xml</SCPDURL><controlURL>%[12]s</controlURL><eventSubURL>/evt/IPConn</eventSubURL></service></serviceList></device></deviceList>`+
		`</device></deviceList><presentationURL>https://github.com/vpnfwd/vpnfwd</presentationURL></device></root>`+"\n",
		ver, igdType, root, wanType, wan, cifType, cifControl, connType, conn, ipcType, map[int]string{1: "", 2: "2"}[v], ipcControl, v-1)
}
