#!/usr/bin/env bash
# Writes criruntime's default CNI network config when the CNI config directory has none.
#
# Usage: hack/install-cni-config.sh [CONF_DIR]     (default /etc/cni/net.d)
#
# Idempotent: if CONF_DIR already holds any .conflist/.conf/.json file (ours or another network's),
# nothing is written — criruntime uses the lexically first valid file, and we never override an
# operator's or a CNI daemonset's choice.
#
# The network ("criruntime", bridge cni-crt0, 10.85.0.0/16; podman uses 10.88.0.0/16) chains:
#   bridge   veth into the bridge, gateway on the bridge, masquerade for outbound traffic,
#            hairpin so a pod reaches itself through its own service/host port;
#            host-local IPAM keeps its allocations under /var/lib/criruntime/cni/networks.
#   portmap  hostPort forwards (capability portMappings); snat so 127.0.0.1:hostPort works.
# The loopback plugin is NOT listed: criruntime's CniManager runs it on "lo" for every pod before
# this network (as containerd does), so lo is up without the runtime touching it itself.
set -euo pipefail

conf_dir="${1:-/etc/cni/net.d}"
conf_file="$conf_dir/10-criruntime.conflist"

shopt -s nullglob
existing=("$conf_dir"/*.conflist "$conf_dir"/*.conf "$conf_dir"/*.json)
shopt -u nullglob
if ((${#existing[@]} > 0)); then
  echo "install-cni-config.sh: $conf_dir already has a CNI config (${existing[0]##*/}); leaving it alone"
  exit 0
fi

mkdir -p "$conf_dir"
# Write to a temp file and rename, so the daemon (which watches the directory) never reads half a file.
tmp="$(mktemp "$conf_dir/.10-criruntime.conflist.XXXXXX")"
trap 'rm -f "$tmp"' EXIT
cat >"$tmp" <<'JSON'
{
  "cniVersion": "1.0.0",
  "name": "criruntime",
  "plugins": [
    {
      "type": "bridge",
      "bridge": "cni-crt0",
      "isGateway": true,
      "ipMasq": true,
      "hairpinMode": true,
      "ipam": {
        "type": "host-local",
        "ranges": [[{ "subnet": "10.85.0.0/16" }]],
        "routes": [{ "dst": "0.0.0.0/0" }],
        "dataDir": "/var/lib/criruntime/cni/networks"
      }
    },
    {
      "type": "portmap",
      "capabilities": { "portMappings": true },
      "snat": true
    }
  ]
}
JSON
chmod 0644 "$tmp"
mv -f "$tmp" "$conf_file"
trap - EXIT
echo "install-cni-config.sh: wrote $conf_file"
