// Command coredns is CoreDNS with only the plugins the local node's Corefile uses
// (tools/node/node.py writes it): cluster.local answered from the Kubernetes API, nothing
// forwarded anywhere. Linking these few plugins instead of CoreDNS's whole set
// (core/plugin) keeps the cold build short and leaves no forwarding plugin in the binary.
package main

import (
	"github.com/coredns/coredns/core/dnsserver"
	"github.com/coredns/coredns/coremain"

	_ "github.com/coredns/coredns/plugin/bind"
	_ "github.com/coredns/coredns/plugin/cache"
	_ "github.com/coredns/coredns/plugin/errors"
	_ "github.com/coredns/coredns/plugin/kubernetes"
	_ "github.com/coredns/coredns/plugin/log"
)

// The plugins in the order CoreDNS's own list (core/dnsserver/zdirectives.go) runs them.
func init() {
	dnsserver.Directives = []string{
		"bind",
		"errors",
		"log",
		"cache",
		"kubernetes",
	}
}

func main() {
	coremain.Run()
}
