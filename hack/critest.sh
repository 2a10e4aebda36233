#!/usr/bin/env bash
# Runs stock critest v1.26.1 (kubernetes-sigs/cri-tools, unmodified, grpc-go like the kubelet) against
# the built daemon, offline:
#   - Debian's docker-registry on a free 127.0.0.1 port with temp storage, holding stand-ins for every
#     image critest pulls, built here from Debian packages (tests/CriRuntime.TestSupport, command
#     push-critest-images) under the upstream repository paths;
#   - a temp certs.d that mirrors registry.k8s.io and gcr.io to that registry;
#   - a temp CNI network of its own (bridge crt-critest0, 10.199.0.0/24, portmap for hostPorts);
#   - the daemon on its own temp socket, root and state, without metrics.
# Skipped specs are named below with the reason and printed before the run; nothing else is skipped.
# Whatever happens, pods, the daemon, mounts, the bridge, the registry and temp dirs are cleaned up.
#
#   hack/critest.sh [CRITEST ARGS...]     e.g. hack/critest.sh -ginkgo.focus 'HostPID'
#
# Env: CRITEST_REPORT_DIR  where junit.xml and the daemon log are kept (default _output/critest);
#      CRITEST_TIMEOUT     ginkgo timeout for the whole run (default 45m);
#      CRITOOLS_DIR        see hack/install-critools.sh.
# Exits non-zero if any spec fails. Needs root (pods, mounts, bridges) and host ports 12000-12003.
set -euo pipefail
cd "$(dirname "$0")/.."
repo="$PWD"

if [ "$(id -u)" != 0 ]; then
  echo "hack/critest.sh: must run as root (pods, overlay mounts, network namespaces)" >&2
  exit 1
fi

# Specs that cannot pass here, each with its reason. ginkgo matches these regexes against the full spec text.
skip_names=(
  'public image with digest should be pulled and removed'
)
skip_reasons=(
  'pinned to a digest only the upstream registry serves (gcr.io/k8s-staging-cri-tools/test-image-digest@sha256:9700f9a2...): no offline stand-in can have that digest'
)

report_dir="${CRITEST_REPORT_DIR:-$repo/_output/critest}"
mkdir -p "$report_dir"
rm -f "$report_dir/junit.xml" "$report_dir/daemon.log" "$report_dir/critest.log"

hack/install-deps.sh
hack/setup-cgroups.sh
if [ ! -x _output/bin/criruntime ]; then
  hack/build.sh
fi
critools="$(hack/install-critools.sh | tail -n1)"
crictl="$critools/crictl"
critest="$critools/critest"

work="$(mktemp -d /tmp/criruntime-critest.XXXXXX)"
sock="$work/run/criruntime.sock"
registry_pid=""
daemon_pid=""
bridge=crt-critest0
subnet=10.199.0.0/24

cleanup() {
  local rc=$?
  set +e
  if [ -n "$daemon_pid" ] && kill -0 "$daemon_pid" 2>/dev/null; then
    # Remove whatever critest left behind (a failed or interrupted spec) while the daemon can still do it.
    timeout 60 "$crictl" --runtime-endpoint "unix://$sock" rmp -fa >/dev/null 2>&1
    kill -TERM "$daemon_pid"
    for _ in $(seq 100); do kill -0 "$daemon_pid" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$daemon_pid" 2>/dev/null
    wait "$daemon_pid" 2>/dev/null
  fi
  # Containers outlive the daemon under conmon: kill what is left of ours (conmon, whose command line
  # names our state dir, and container processes, whose root is under our temp dir).
  for pidfile in $(find "$work/state" \( -name conmon.pid -o -name pidfile \) 2>/dev/null); do
    pid="$(cat "$pidfile" 2>/dev/null)"
    [ -n "$pid" ] && [ -d "/proc/$pid" ] || continue
    if tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -qF "$work/" ||
       [[ "$(readlink "/proc/$pid/root" 2>/dev/null)" == "$work/"* ]]; then
      kill -KILL "$pid"
    fi
  done
  # Unmount everything under the temp dir, deepest first.
  awk -v w="$work" '$2 == w || index($2, w "/") == 1 { print $2 }' /proc/self/mounts | sort -r | while read -r m; do
    umount -l "$m" 2>/dev/null
  done
  ip link del "$bridge" 2>/dev/null
  if [ -n "$registry_pid" ]; then
    kill -TERM "$registry_pid" 2>/dev/null
    wait "$registry_pid" 2>/dev/null
  fi
  [ -f "$work/daemon.log" ] && cp "$work/daemon.log" "$report_dir/daemon.log"
  rm -rf "$work"
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# Debian's dynamically linked busybox for the stand-ins (the static one's sh runs ls without exec'ing
# /bin/ls, see CritestImages.cs). It conflicts with busybox-static as a package, so it is only unpacked.
busybox_dir="$repo/_output/critest/busybox-deb"
if [ ! -x "$busybox_dir/bin/busybox" ]; then
  dl="$(mktemp -d)"
  chmod 0755 "$dl"   # apt's _apt user downloads into it
  if ! (cd "$dl" && apt-get download -qq busybox >/dev/null 2>&1); then
    apt-get update -qq
    (cd "$dl" && apt-get download -qq busybox)
  fi
  rm -rf "$busybox_dir"
  mkdir -p "$busybox_dir"
  dpkg-deb -x "$dl"/busybox_*.deb "$busybox_dir"
  rm -rf "$dl"
fi

# The registry binds port 0 and says which port it got: no race with other tests for a "free" port.
mkdir -p "$work/registry" "$work/run" "$work/root" "$work/state" "$work/certs.d" "$work/net.d" "$work/ipam"
cat >"$work/registry/config.yml" <<YAML
version: 0.1
log:
  level: info
storage:
  filesystem:
    rootdirectory: $work/registry/storage
  delete:
    enabled: true
http:
  addr: 127.0.0.1:0
  headers:
    X-Content-Type-Options: [nosniff]
YAML
docker-registry serve "$work/registry/config.yml" >"$work/registry/log" 2>&1 </dev/null &
registry_pid=$!
registry=""
for _ in $(seq 200); do
  registry="$(grep -o 'listening on 127\.0\.0\.1:[0-9]*' "$work/registry/log" | head -n1 | sed 's/listening on //' || true)"
  [ -n "$registry" ] && break
  kill -0 "$registry_pid" 2>/dev/null || break
  sleep 0.1
done
if [ -z "$registry" ]; then
  echo "hack/critest.sh: docker-registry did not start; its log:" >&2
  cat "$work/registry/log" >&2
  exit 1
fi
echo "hack/critest.sh: registry on $registry"

run_args=(--project tests/CriRuntime.TestSupport -c Release)
[ -n "${CRIRUNTIME_ARTIFACTS_PATH:-}" ] && run_args+=(--artifacts-path "$CRIRUNTIME_ARTIFACTS_PATH")
dotnet run "${run_args[@]}" -- push-critest-images --registry "$registry" --busybox "$busybox_dir/bin/busybox"

for host in registry.k8s.io gcr.io; do
  mkdir -p "$work/certs.d/$host"
  cat >"$work/certs.d/$host/hosts.toml" <<TOML
server = "https://$host"

[host."http://$registry"]
  capabilities = ["pull", "resolve"]
TOML
done

if ip -4 route show | grep -q '^10\.199\.'; then
  echo "hack/critest.sh: this host already routes 10.199.0.0/16; the critest pod network ($subnet) would collide" >&2
  exit 1
fi
ip link del "$bridge" 2>/dev/null || true
cat >"$work/net.d/10-critest.conflist" <<JSON
{
  "cniVersion": "1.0.0",
  "name": "criruntime-critest",
  "plugins": [
    {
      "type": "bridge",
      "bridge": "$bridge",
      "isGateway": true,
      "ipMasq": true,
      "hairpinMode": true,
      "ipam": {
        "type": "host-local",
        "ranges": [[{ "subnet": "$subnet" }]],
        "routes": [{ "dst": "0.0.0.0/0" }],
        "dataDir": "$work/ipam"
      }
    },
    { "type": "portmap", "capabilities": { "portMappings": true }, "snat": true }
  ]
}
JSON

cat >"$work/config.toml" <<TOML
socket = "$sock"
root = "$work/root"
state = "$work/state"
log_level = "debug"

[registry]
config_path = "$work/certs.d"

[cni]
conf_dir = "$work/net.d"
bin_dirs = ["/usr/lib/cni", "/opt/cni/bin"]

[metrics]
address = ""
TOML

_output/bin/criruntime --config "$work/config.toml" >"$work/daemon.log" 2>&1 </dev/null &
daemon_pid=$!
for _ in $(seq 300); do
  "$crictl" --runtime-endpoint "unix://$sock" --timeout 2s version >/dev/null 2>&1 && break
  if ! kill -0 "$daemon_pid" 2>/dev/null; then
    echo "hack/critest.sh: the daemon exited during start-up; its log:" >&2
    tail -n 40 "$work/daemon.log" >&2
    exit 1
  fi
  sleep 0.1
done
"$crictl" --runtime-endpoint "unix://$sock" --timeout 5s version

echo "=== critest: skipped specs"
skip_re=""
for i in "${!skip_names[@]}"; do
  echo "  SKIP '${skip_names[$i]}': ${skip_reasons[$i]}"
  skip_re="${skip_re:+$skip_re|}${skip_names[$i]}"
done

status=0
"$critest" --runtime-endpoint "unix://$sock" --image-endpoint "unix://$sock" \
  -ginkgo.v -ginkgo.no-color -ginkgo.timeout="${CRITEST_TIMEOUT:-45m}" \
  -ginkgo.junit-report="$report_dir/junit.xml" \
  -ginkgo.skip="$skip_re" "$@" 2>&1 | tee "$report_dir/critest.log" || status=$?

echo "=== critest summary"
grep -E '^(Ran [0-9]+ of [0-9]+ Specs|(FAIL|SUCCESS)! -- )' "$report_dir/critest.log" || echo "(no ginkgo summary: critest did not finish)"
if [ "$status" -ne 0 ]; then
  echo "=== critest failures"
  awk '/^Summarizing [0-9]+ Failure/ { p = 1 } p && /^Ran [0-9]+ of/ { exit } p' "$report_dir/critest.log"
  # Each failure's message (the [FAILED] line and what follows it, up to the Go error dump).
  awk '/^  \[FAILED\] / && !/^  \[FAILED\] in \[/ { n = 6; print; next } n > 0 { if ($0 ~ /^  Unexpected error|^[[:space:]]*$|^  \[FAILED\] in /) { n = 0; next } print; n-- }' "$report_dir/critest.log" | cut -c1-400
  echo "daemon log: $report_dir/daemon.log"
fi
exit "$status"
