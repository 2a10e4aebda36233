#!/usr/bin/env bash
# Prepares a cgroup v1 (hybrid) host for both runc and crun. Idempotent.
#
# On some hybrid hosts a v1 controller is left unmounted, so the kernel offers it on the unified
# (v2) hierarchy at /sys/fs/cgroup/unified. runc copes, but crun then refuses every container with
# "cgroups in hybrid mode not supported, drop all controllers from cgroupv2". Mounting each such
# controller as its own v1 hierarchy, as systemd does on a full hybrid setup, moves it off v2.
# A pure v2 host (cgroup2 mounted on /sys/fs/cgroup) needs nothing and is left alone.
set -euo pipefail

if [[ $(id -u) -ne 0 ]]; then
  echo "setup-cgroups.sh: must run as root" >&2
  exit 1
fi

unified=/sys/fs/cgroup/unified
if [[ $(stat -fc %T /sys/fs/cgroup) == cgroup2fs || ! -f $unified/cgroup.controllers ]]; then
  exit 0
fi

for controller in $(cat "$unified/cgroup.controllers"); do
  target=/sys/fs/cgroup/$controller
  if mountpoint -q "$target"; then continue; fi
  mkdir -p "$target"
  if mount -t cgroup -o "$controller" cgroup "$target"; then
    echo "setup-cgroups.sh: mounted the $controller controller as a v1 hierarchy at $target (it was on the unified hierarchy)"
  else
    echo "setup-cgroups.sh: could not mount $controller at $target; crun will refuse containers until it is off $unified" >&2
  fi
done
