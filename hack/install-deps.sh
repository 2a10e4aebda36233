#!/usr/bin/env bash
# Installs the Debian packages that criruntime's integration tests and hack scripts need
# (OCI runtimes, conmon, CNI plugins, a local docker-registry, busybox-static for test images,
# htpasswd for auth tests). Idempotent: only missing packages are installed, and `apt-get update`
# runs only when something must be installed. The docker-registry package would normally start
# its own service on port 5000; we block that during install (policy-rc.d) and stop it afterwards
# in case it got started anyway, because tests start their own registries on free ports.
set -euo pipefail

PACKAGES=(
  runc crun conmon catatonit containernetworking-plugins
  docker-registry busybox-static
  iptables iproute2
  apache2-utils   # htpasswd -B for registry basic-auth tests
  ca-certificates curl jq
  clang zlib1g-dev   # Native AOT publish of the daemon (hack/build.sh)
  umoci skopeo    # images made and pushed by tools other than ours: the crictl lifecycle test; TarFramingTests
                  # (Debian's umoci 0.4.7 "insert" writes a layer without tar end blocks)
  gcc libc6-dev      # gcc -static: the small helpers in the critest stand-in images (hack/critest.sh)
  criu               # CheckpointContainer (runc/crun checkpoint hand the work to CRIU)
)

if [[ $(id -u) -ne 0 ]]; then
  echo "install-deps.sh: must run as root (apt-get install)" >&2
  exit 1
fi

is_installed() {
  # dpkg-query prints "install ok installed" only for fully configured packages.
  [[ "$(dpkg-query -W -f='${Status}' "$1" 2>/dev/null || true)" == "install ok installed" ]]
}

missing=()
for p in "${PACKAGES[@]}"; do
  is_installed "$p" || missing+=("$p")
done

if [[ ${#missing[@]} -eq 0 ]]; then
  echo "install-deps.sh: all packages already installed: ${PACKAGES[*]}"
  exit 0
fi

echo "install-deps.sh: installing: ${missing[*]}"

# Keep maintainer scripts from starting services (docker-registry listens on :5000 otherwise).
# Only add our own policy-rc.d if none exists, and remove only what we added.
POLICY=/usr/sbin/policy-rc.d
added_policy=0
if [[ ! -e $POLICY ]]; then
  printf '#!/bin/sh\n# temporary: added by criruntime hack/install-deps.sh\nexit 101\n' >"$POLICY"
  chmod 0755 "$POLICY"
  added_policy=1
fi
cleanup() { if [[ $added_policy -eq 1 ]]; then rm -f "$POLICY"; fi; }
trap cleanup EXIT

export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}"

# If systemd is running, make sure the packaged registry service is stopped and disabled.
if [[ -d /run/systemd/system ]] && command -v systemctl >/dev/null; then
  systemctl disable --now docker-registry.service >/dev/null 2>&1 || true
fi
# Without systemd, a sysvinit start may still have happened if a policy-rc.d allowed it.
if command -v pgrep >/dev/null; then
  for pid in $(pgrep -x docker-registry || true); do
    # Only stop the packaged service (runs with the packaged config), not test registries.
    if tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -q '/etc/docker/registry/config.yml'; then
      echo "install-deps.sh: stopping packaged docker-registry service (pid $pid)"
      kill "$pid" || true
    fi
  done
fi

echo "install-deps.sh: installed: ${missing[*]}"
