#!/bin/sh
# make demo: one real macvlan ADD/DEL with IPAM, in throwaway namespaces; the machine's own links
# are never touched. Needs root. A "node" netns gets a veth pair (eth0 is the macvlan master, with
# a default route, so "master" can be left out); a "pod" netns receives net1.
set -eu
cd "$(dirname "$0")/.."
BIN=${CNI_BIN_DIR:-$PWD/build/dev-bin}
id=$$
NODE=crn-demo-node-$id
POD=crn-demo-pod-$id
DATA=$(mktemp -d /tmp/crn-demo-ipam.XXXXXX)

cleanup() {
    ip netns del "$POD" 2>/dev/null || true
    ip netns del "$NODE" 2>/dev/null || true
    rm -rf "$DATA"
}
trap cleanup EXIT INT TERM

ip netns add "$NODE"
ip netns add "$POD"
ip -n "$NODE" link add eth0 type veth peer name peer0
ip -n "$NODE" link set eth0 up
ip -n "$NODE" link set peer0 up
ip -n "$NODE" addr add 192.0.2.1/24 dev eth0
ip -n "$NODE" route add default via 192.0.2.254 dev eth0 onlink

CONF=$(cat <<JSON
{"cniVersion": "1.1.0", "name": "demo-net", "type": "macvlan", "mode": "bridge",
 "ipam": {"type": "host-local", "dataDir": "$DATA",
          "ranges": [[{"subnet": "10.56.0.0/24", "gateway": "10.56.0.1"}]],
          "routes": [{"dst": "0.0.0.0/0"}]}}
JSON
)

plugin() {  # plugin COMMAND: run macvlan as the runtime would, inside the node netns
    echo "$CONF" | ip netns exec "$NODE" env -i PATH="$PATH" CNI_COMMAND="$1" CNI_CONTAINERID=demo-$id \
        CNI_NETNS="/var/run/netns/$POD" CNI_IFNAME=net1 CNI_PATH="$BIN" "$BIN/macvlan"
}

echo "== network config"
echo "$CONF"
echo "== macvlan ADD (master: the node's default route interface, eth0)"
plugin ADD | python3 -m json.tool
echo "== ip addr in the pod"
ip -n "$POD" addr show
echo "== ip route in the pod"
ip -n "$POD" route show
echo "== macvlan DEL"
plugin DEL && echo "DEL ok"
echo "== ip link in the pod after DEL"
ip -n "$POD" link show
echo "== IP reservations left: $(find "$DATA" -type f -name '10.*' | wc -l)"
