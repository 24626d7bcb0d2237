#!/bin/sh
# Install the Debian packages the test tiers need, only those missing (CI starts from a fresh machine).
set -eu
need=""
have() { dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q 'ok installed'; }
for pkg in iproute2 containernetworking-plugins; do
    have "$pkg" || need="$need $pkg"
done
[ -z "$need" ] && exit 0
echo "installing:$need" >&2
export DEBIAN_FRONTEND=noninteractive
apt-get install -y -q --no-install-recommends $need >/dev/null \
    || { apt-get update -q >/dev/null && apt-get install -y -q --no-install-recommends $need >/dev/null; }
