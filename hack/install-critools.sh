#!/usr/bin/env bash
# Puts stock crictl and critest v1.26.1 (kubernetes-sigs/cri-tools, unmodified) into
# _output/critools/ and prints that directory. They speak CRI through grpc-go as kubelets up to 1.30
# do, which is why the tests use them and not only our own .NET client.
#
# Looked for in this order:
#   1. $CRITOOLS_DIR: a directory holding executable crictl and critest, used as they are;
#   2. ../shared/critools (beside this checkout): crictl.xz and critest.xz, unpacked and checked
#      against its SHA256SUMS;
#   3. the official v1.26.1 release tarballs, when this machine can reach them, checked against the
#      release's published .sha256 files.
# If none of these is there it fails and says what to install; it never skips silently.
set -euo pipefail
cd "$(dirname "$0")/.."

version=v1.26.1
out="$PWD/_output/critools"
mkdir -p "$out"

have_both() { [ -x "$1/crictl" ] && [ -x "$1/critest" ]; }

if [ -n "${CRITOOLS_DIR:-}" ]; then
  if ! have_both "$CRITOOLS_DIR"; then
    echo "install-critools.sh: CRITOOLS_DIR=$CRITOOLS_DIR does not hold executable crictl and critest" >&2
    exit 1
  fi
  for t in crictl critest; do ln -sfn "$(cd "$CRITOOLS_DIR" && pwd)/$t" "$out/$t"; done
  echo "$out"
  exit 0
fi

shared="$(cd .. && pwd)/shared/critools"
if [ -f "$shared/crictl.xz" ] && [ -f "$shared/critest.xz" ] && [ -f "$shared/SHA256SUMS" ]; then
  # Unpack next to a copy of the sums, then check; a mismatch leaves nothing usable behind.
  tmp="$(mktemp -d "$out/.unpack.XXXXXX")"
  trap 'rm -rf "$tmp"' EXIT
  for t in crictl critest; do xz -dkc "$shared/$t.xz" >"$tmp/$t"; done
  if ! (cd "$tmp" && sha256sum --quiet -c "$shared/SHA256SUMS"); then
    echo "install-critools.sh: $shared does not match its SHA256SUMS; refusing to use it" >&2
    exit 1
  fi
  chmod 0755 "$tmp/crictl" "$tmp/critest"
  for t in crictl critest; do rm -f "$out/$t"; mv "$tmp/$t" "$out/$t"; done
  echo "$out"
  exit 0
fi

case "$(uname -m)" in
  x86_64) arch=amd64 ;;
  aarch64) arch=arm64 ;;
  *) arch="" ;;
esac
base="https://github.com/kubernetes-sigs/cri-tools/releases/download/$version"
if [ -n "$arch" ] && command -v curl >/dev/null 2>&1 && curl -fsI --max-time 10 "$base/crictl-$version-linux-$arch.tar.gz.sha256" >/dev/null 2>&1; then
  tmp="$(mktemp -d "$out/.download.XXXXXX")"
  trap 'rm -rf "$tmp"' EXIT
  for t in crictl critest; do
    tarball="$t-$version-linux-$arch.tar.gz"
    curl -fsSL --max-time 300 -o "$tmp/$tarball" "$base/$tarball"
    curl -fsSL --max-time 30 -o "$tmp/$tarball.sha256" "$base/$tarball.sha256"
    want="$(awk '{print $1}' "$tmp/$tarball.sha256")"
    got="$(sha256sum "$tmp/$tarball" | awk '{print $1}')"
    if [ -z "$want" ] || [ "$want" != "$got" ]; then
      echo "install-critools.sh: $tarball has sha256 $got, the release says '$want'; refusing to use it" >&2
      exit 1
    fi
    tar -xzf "$tmp/$tarball" -C "$tmp" "$t"
    chmod 0755 "$tmp/$t"
    rm -f "$out/$t"; mv "$tmp/$t" "$out/$t"
  done
  echo "$out"
  exit 0
fi

cat >&2 <<EOF
install-critools.sh: crictl and critest $version were not found. Provide one of:
  - CRITOOLS_DIR=/path/to/dir holding executable crictl and critest $version;
  - ../shared/critools/{crictl.xz,critest.xz,SHA256SUMS} beside this checkout;
  - network access to $base (the official release tarballs).
EOF
exit 1
