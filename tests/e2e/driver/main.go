// cni-e2e-driver: a libcni client with cnitool's semantics, the project's own, for the e2e tier.
//
// Built at test time in GOPATH mode against Debian's golang-github-appc-cni-dev (libcni 1.1.2):
//
//	GOPATH=/usr/share/gocode GO111MODULE=off go build -o <tmp>/cni-e2e-driver main.go
//
// Usage: cni-e2e-driver add|check|del|cached|validate <network> <netns-path>
//
// Environment, as cnitool reads it:
//
//	NETCONFPATH     where <network>.conflist / .conf live (default /etc/cni/net.d); a single-plugin
//	                .conf is wrapped into a list, as libcni's LoadConfList does
//	CNI_PATH        plugin search path (colon separated)
//	CNI_IFNAME      interface name (default eth0)
//	CNI_ARGS        "K=V;K=V" -> RuntimeConf.Args (libcni passes them on as CNI_ARGS)
//	CAP_ARGS        JSON object -> RuntimeConf.CapabilityArgs (runtimeConfig for plugins declaring them)
//
// Beyond cnitool (the tests need them):
//
//	CNI_CONTAINERID container ID (default: cnitool's "cnitool-" + first 20 hex of sha512(netns path))
//	CNI_CACHE_DIR   libcni's cache dir (default /var/lib/cni)
//	CNI_SINGLE_CONF "1": load <network> with LoadConf and call AddNetwork/CheckNetwork/DelNetwork, as
//	                Multus does for a NAD whose config is a single plugin (confAdd vs conflistAdd)
//
// add prints the result as cnitool does; cached prints the result libcni cached for the attachment (ADD
// writes it, DEL removes it, CHECK and DEL read it as prevResult); validate prints the plugins' supported
// versions check. Errors go to stderr with exit status 1.
package main

import (
	"context"
	"crypto/sha512"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/containernetworking/cni/libcni"
)

func fail(format string, a ...interface{}) {
	fmt.Fprintf(os.Stderr, format+"\n", a...)
	os.Exit(1)
}

func main() {
	if len(os.Args) != 4 {
		fail("usage: %s add|check|del|cached|validate <network> <netns-path>", filepath.Base(os.Args[0]))
	}
	cmd, network, netns := os.Args[1], os.Args[2], os.Args[3]

	confDir := os.Getenv("NETCONFPATH")
	if confDir == "" {
		confDir = "/etc/cni/net.d"
	}
	single := os.Getenv("CNI_SINGLE_CONF") == "1"
	var list *libcni.NetworkConfigList
	var conf *libcni.NetworkConfig
	var err error
	if single {
		conf, err = libcni.LoadConf(confDir, network)
	} else {
		list, err = libcni.LoadConfList(confDir, network)
	}
	if err != nil {
		fail("loading network %q from %s: %v", network, confDir, err)
	}

	rt := &libcni.RuntimeConf{
		ContainerID: os.Getenv("CNI_CONTAINERID"),
		NetNS:       netns,
		IfName:      os.Getenv("CNI_IFNAME"),
	}
	if rt.IfName == "" {
		rt.IfName = "eth0"
	}
	if rt.ContainerID == "" {
		rt.ContainerID = fmt.Sprintf("cnitool-%x", sha512.Sum512([]byte(netns)))[:20]
	}
	if args := os.Getenv("CNI_ARGS"); args != "" {
		for _, kv := range strings.Split(args, ";") {
			parts := strings.SplitN(kv, "=", 2)
			if len(parts) != 2 {
				fail("CNI_ARGS: %q is not K=V", kv)
			}
			rt.Args = append(rt.Args, [2]string{parts[0], parts[1]})
		}
	}
	if capArgs := os.Getenv("CAP_ARGS"); capArgs != "" {
		if err := json.Unmarshal([]byte(capArgs), &rt.CapabilityArgs); err != nil {
			fail("CAP_ARGS: %v", err)
		}
	}

	cni := libcni.NewCNIConfigWithCacheDir(filepath.SplitList(os.Getenv("CNI_PATH")), os.Getenv("CNI_CACHE_DIR"), nil)
	ctx := context.TODO()
	if single {
		runSingle(ctx, cni, cmd, conf, rt)
		return
	}
	switch cmd {
	case "add":
		result, err := cni.AddNetworkList(ctx, list, rt)
		if err != nil {
			fail("%v", err)
		}
		if err := result.Print(); err != nil {
			fail("printing result: %v", err)
		}
	case "check":
		if err := cni.CheckNetworkList(ctx, list, rt); err != nil {
			fail("%v", err)
		}
	case "del":
		if err := cni.DelNetworkList(ctx, list, rt); err != nil {
			fail("%v", err)
		}
	case "cached":
		result, err := cni.GetNetworkListCachedResult(list, rt)
		if err != nil {
			fail("%v", err)
		}
		if result == nil {
			fmt.Println("null")
			return
		}
		if err := result.Print(); err != nil {
			fail("printing result: %v", err)
		}
	case "validate":
		caps, err := cni.ValidateNetworkList(ctx, list)
		if err != nil {
			fail("%v", err)
		}
		out, _ := json.Marshal(caps)
		fmt.Println(string(out))
	default:
		fail("unknown command %q", cmd)
	}
}

func runSingle(ctx context.Context, cni *libcni.CNIConfig, cmd string, conf *libcni.NetworkConfig, rt *libcni.RuntimeConf) {
	switch cmd {
	case "add":
		result, err := cni.AddNetwork(ctx, conf, rt)
		if err != nil {
			fail("%v", err)
		}
		if err := result.Print(); err != nil {
			fail("printing result: %v", err)
		}
	case "check":
		if err := cni.CheckNetwork(ctx, conf, rt); err != nil {
			fail("%v", err)
		}
	case "del":
		if err := cni.DelNetwork(ctx, conf, rt); err != nil {
			fail("%v", err)
		}
	default:
		fail("command %q is not supported with CNI_SINGLE_CONF", cmd)
	}
}
