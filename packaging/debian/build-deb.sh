#!/usr/bin/env bash
# Builds _output/criruntime_<version>_<arch>.deb: the Native AOT daemon (nodes need no .NET),
# the systemd unit and the default config as a conffile. Needs the .NET SDK and dpkg-deb.
set -euo pipefail
cd "$(dirname "$0")/../.."

arch="$(dpkg --print-architecture)"
case "$arch" in amd64) rid=linux-x64 ;; arm64) rid=linux-arm64 ;; *) echo "unsupported architecture $arch" >&2; exit 1 ;; esac
version="$(sed -n 's:.*<Version>\(.*\)</Version>.*:\1:p' Directory.Build.props)"
stage="_output/deb/criruntime_${version}_${arch}"
rm -rf "$stage"
mkdir -p "$stage/DEBIAN" "$stage/usr/lib/criruntime" "$stage/usr/bin" "$stage/lib/systemd/system" \
  "$stage/etc/criruntime/certs.d" "$stage/usr/share/doc/criruntime"

dotnet publish src/CriRuntime/CriRuntime.csproj -c Release -r "$rid" -o "$stage/usr/lib/criruntime" --nologo -v quiet
rm -f "$stage"/usr/lib/criruntime/*.dbg "$stage"/usr/lib/criruntime/*.pdb
ln -s ../lib/criruntime/criruntime "$stage/usr/bin/criruntime"
install -m 0644 packaging/systemd/criruntime.service "$stage/lib/systemd/system/criruntime.service"
"$stage/usr/lib/criruntime/criruntime" config default >"$stage/etc/criruntime/config.toml"
install -m 0644 README.md "$stage/usr/share/doc/criruntime/README.md"

cat >"$stage/DEBIAN/control" <<CONTROL
Package: criruntime
Version: ${version}
Architecture: ${arch}
Maintainer: criruntime developers <criruntime@localhost>
Depends: runc | crun, conmon, containernetworking-plugins, iptables, libc6, zlib1g
Recommends: crun, catatonit
Section: admin
Priority: optional
Description: Kubernetes container runtime (CRI v1)
 criruntime serves the Kubernetes CRI v1 API on a unix socket for kubelet and crictl,
 running containers with runc or crun under conmon.
CONTROL
echo /etc/criruntime/config.toml >"$stage/DEBIAN/conffiles"
cat >"$stage/DEBIAN/postinst" <<'POSTINST'
#!/bin/sh
set -e
if [ -d /run/systemd/system ]; then
  systemctl daemon-reload
  systemctl enable --now criruntime.service || true
fi
POSTINST
cat >"$stage/DEBIAN/prerm" <<'PRERM'
#!/bin/sh
set -e
# Only the daemon stops; containers keep running (the unit uses KillMode=process).
if [ -d /run/systemd/system ] && [ "$1" = remove ]; then
  systemctl disable --now criruntime.service || true
fi
PRERM
chmod 0755 "$stage/DEBIAN/postinst" "$stage/DEBIAN/prerm"
dpkg-deb --build --root-owner-group "$stage" "_output/criruntime_${version}_${arch}.deb" >/dev/null
echo "built _output/criruntime_${version}_${arch}.deb"
