#!/usr/bin/env bash
# Benchmarks criruntime side by side with containerd (issue #4) and prints both runtimes' figures with
# the ratio criruntime/containerd; writes the JSON to _output/bench/results-<time>.json.
#
#   hack/bench.sh            the full workload (takes about 10 minutes)
#   hack/bench.sh --quick    fewer pods and runs, for a smoke test
#   hack/bench.sh --out F    write the JSON to F
#
# Env: BENCH_TOOL_ARGS (more options for the tool, e.g. "--skip pull,floor"; see criruntime-bench --help),
#      BENCH_CONTAINERD_LOG_LEVEL (containerd's [debug] level, default info),
#      BENCH_NO_BUILD=1 (use _output/bin/criruntime and _output/bench as they are, when both exist).
# The exec figures use stock crictl from _output/critools (hack/install-critools.sh); without it they are skipped.
#
# What it does, as root on Debian 12: installs Debian's containerd and runc if missing, runs
# hack/install-deps.sh and hack/setup-cgroups.sh, builds the daemon (hack/build.sh) and the bench tool
# (src/CriRuntime.Bench), starts Debian's docker-registry on a free loopback port with storage of its
# own and pushes the bench images built in-repo (busybox, a pause image made of /usr/bin/catatonit, a
# 128 MiB multi-layer image and one sharing its layers). Both runtimes get the same CNI conflist
# (bridge "crbench0" on 10.254.77.0/24, host-local, portmap) in a bench-only conf dir, the same
# hosts.toml dir mapping the registry to plain HTTP, and roots, state dirs and sockets of their own
# under /var/lib/criruntime-bench and /run/criruntime-bench: a system containerd (/run/containerd,
# /var/lib/containerd) is never touched. The tool starts each daemon itself (to time start-up) and
# removes its pods through CRI; on exit, even on failure, this script kills only the processes whose
# command line names the bench dirs, unmounts what is left under them, deletes the bench bridge,
# cgroups and dirs, and stops the registry it started.
set -euo pipefail

REPO_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BENCH_ROOT=/var/lib/criruntime-bench
BENCH_STATE=/run/criruntime-bench
CGROUP_PARENT=/criruntime-bench
BRIDGE=crbench0
SUBNET=10.254.77.0/24

quick=0
out=""
while [[ $# -gt 0 ]]; do
  case $1 in
    --quick) quick=1; shift ;;
    --out) out=${2:?--out needs a file}; shift 2 ;;
    -h|--help) awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "$0"; exit 0 ;;
    *) echo "bench.sh: unknown argument: $1 (see --help)" >&2; exit 2 ;;
  esac
done
[[ $(id -u) -eq 0 ]] || { echo "bench.sh: must run as root (daemons, namespaces, cgroups)" >&2; exit 1; }
[[ -n $out ]] || out=$REPO_ROOT/_output/bench/results-$(date -u +%Y%m%dT%H%M%SZ).json
mkdir -p "$(dirname "$out")"
out=$(cd "$(dirname "$out")" && pwd)/$(basename "$out")

log() { echo "[bench.sh $(date +%H:%M:%S)] $*" >&2; }

registry_pid=""
# containerd 1.6 puts shim sockets under /run/containerd/s and pins pod netns under /run/netns whatever its
# state dir is; remove those dirs afterwards if this run made them (and they are empty again).
made_dirs=()
for d in /run/containerd/s /run/containerd /run/netns; do [[ -e $d ]] || made_dirs+=("$d"); done

# Pids of processes whose command line names a bench dir (our daemons, conmons, shims, registry).
bench_pids() {
  local pid cmd
  for pid in $(ls /proc | grep -E '^[0-9]+$'); do
    [[ $pid -eq $$ ]] && continue
    cmd=$(tr '\0' ' ' 2>/dev/null <"/proc/$pid/cmdline") || continue
    if [[ $cmd == *"$BENCH_ROOT/"* || $cmd == *"$BENCH_STATE/"* ]]; then echo "$pid"; fi
  done
}

cleanup() {
  local rc=$?
  set +e
  trap - EXIT INT TERM
  log "cleaning up"
  # Pods first, through CRI, while a daemon may still answer (the tool removes them itself on a normal run).
  if [[ -x $REPO_ROOT/_output/bench/criruntime-bench ]]; then
    for sock in "$BENCH_STATE/criruntime/criruntime.sock" "$BENCH_STATE/containerd/containerd.sock"; do
      [[ -S $sock ]] && timeout 300 "$REPO_ROOT/_output/bench/criruntime-bench" cleanup --endpoint "unix://$sock" \
        --work-dir "$BENCH_ROOT/work" >/dev/null 2>&1
    done
  fi
  # Then every process that names our dirs: TERM, a grace period, KILL.
  local pids
  pids=$(bench_pids)
  if [[ -n $pids ]]; then
    kill -TERM $pids 2>/dev/null
    for _ in $(seq 50); do pids=$(bench_pids); [[ -z $pids ]] && break; sleep 0.2; done
    [[ -n $pids ]] && kill -KILL $pids 2>/dev/null
  fi
  if [[ -n $registry_pid ]]; then kill "$registry_pid" 2>/dev/null; wait "$registry_pid" 2>/dev/null; fi
  # Container processes left in our cgroups (only if a helper died before its container).
  local cg
  for cg in /sys/fs/cgroup/*/"${CGROUP_PARENT#/}"; do
    [[ -d $cg ]] || continue
    find "$cg" -name cgroup.procs -exec cat {} + 2>/dev/null | xargs -r kill -KILL 2>/dev/null
  done
  sleep 0.5
  # Mounts under our dirs (overlay rootfs, namespace pins, shm), deepest first.
  awk -v a="$BENCH_ROOT" -v b="$BENCH_STATE" '$5 == a || index($5, a "/") == 1 || $5 == b || index($5, b "/") == 1 { print $5 }' \
    /proc/self/mountinfo | sort -r | while read -r m; do umount "$m" 2>/dev/null || umount -l "$m" 2>/dev/null; done
  ip link del "$BRIDGE" 2>/dev/null
  for cg in /sys/fs/cgroup/*/"${CGROUP_PARENT#/}"; do
    [[ -d $cg ]] && find "$cg" -depth -type d -exec rmdir {} \; 2>/dev/null
  done
  rm -rf "$BENCH_ROOT" "$BENCH_STATE"
  for d in ${made_dirs[@]+"${made_dirs[@]}"}; do [[ -d $d ]] && rmdir "$d" 2>/dev/null; done
  if [[ -e $BENCH_ROOT || -e $BENCH_STATE ]]; then log "could not remove all of $BENCH_ROOT $BENCH_STATE (busy mounts?)"; fi
  exit "$rc"
}

# ---- refuse to run over another bench run

if [[ -n $(bench_pids) ]]; then
  echo "bench.sh: processes naming $BENCH_ROOT or $BENCH_STATE are running (another bench run?): $(bench_pids | tr '\n' ' ')" >&2
  exit 1
fi
if ip link show "$BRIDGE" >/dev/null 2>&1; then
  echo "bench.sh: bridge $BRIDGE exists (another bench run, or a leftover: ip link del $BRIDGE)" >&2
  exit 1
fi
if ip -4 route show | awk '{print $1}' | grep -qx "$SUBNET"; then
  echo "bench.sh: $SUBNET is already routed on this host; edit SUBNET in $0" >&2
  exit 1
fi
trap cleanup EXIT
trap 'exit 130' INT TERM

# ---- packages, cgroups, builds

is_installed() { [[ "$(dpkg-query -W -f='${Status}' "$1" 2>/dev/null || true)" == "install ok installed" ]]; }
missing=()
for p in containerd runc; do is_installed "$p" || missing+=("$p"); done
if [[ ${#missing[@]} -gt 0 ]]; then
  log "installing ${missing[*]}"
  # Keep the package's maintainer scripts from starting a system containerd.
  added_policy=0
  if [[ ! -e /usr/sbin/policy-rc.d ]]; then
    printf '#!/bin/sh\n# temporary: added by criruntime hack/bench.sh\nexit 101\n' >/usr/sbin/policy-rc.d
    chmod 0755 /usr/sbin/policy-rc.d
    added_policy=1
  fi
  DEBIAN_FRONTEND=noninteractive apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" || install_failed=1
  [[ $added_policy -eq 1 ]] && rm -f /usr/sbin/policy-rc.d
  [[ ${install_failed:-0} -eq 0 ]] || { echo "bench.sh: apt-get install ${missing[*]} failed" >&2; exit 1; }
fi
"$REPO_ROOT/hack/install-deps.sh"
"$REPO_ROOT/hack/setup-cgroups.sh"

if [[ ${BENCH_NO_BUILD:-0} == 1 && -x $REPO_ROOT/_output/bin/criruntime && -x $REPO_ROOT/_output/bench/criruntime-bench ]]; then
  log "BENCH_NO_BUILD=1: using the daemon and bench tool already in _output"
else
  log "building the daemon"
  "$REPO_ROOT/hack/build.sh"
  log "building the bench tool"
  dotnet publish "$REPO_ROOT/src/CriRuntime.Bench/CriRuntime.Bench.csproj" -c Release -o "$REPO_ROOT/_output/bench" --nologo -v quiet
fi
BENCH_TOOL=$REPO_ROOT/_output/bench/criruntime-bench

mkdir -p "$BENCH_ROOT"/{registry/storage,cni/net.d,cni/ipam,hosts.d,work,logs,floor/bundle/rootfs} \
         "$BENCH_ROOT"/criruntime/root "$BENCH_ROOT"/containerd/root \
         "$BENCH_STATE"/criruntime/state "$BENCH_STATE"/containerd/state

# ---- registry on a free loopback port

port_busy() { ss -Hltn "sport = :$1" 2>/dev/null | grep -q .; }
port=5055
while port_busy "$port"; do port=$((port + 1)); [[ $port -lt 5155 ]] || { echo "bench.sh: no free port in 5055-5154" >&2; exit 1; }; done
REGISTRY=127.0.0.1:$port
cat >"$BENCH_ROOT/registry/config.yml" <<YAML
version: 0.1
log:
  level: warn
storage:
  filesystem:
    rootdirectory: $BENCH_ROOT/registry/storage
  delete:
    enabled: true
http:
  addr: $REGISTRY
YAML
docker-registry serve "$BENCH_ROOT/registry/config.yml" >"$BENCH_ROOT/logs/registry.log" 2>&1 </dev/null &
registry_pid=$!
for _ in $(seq 100); do
  [[ $(curl -s -o /dev/null -w '%{http_code}' --max-time 1 "http://$REGISTRY/v2/" || true) == 200 ]] && break
  kill -0 "$registry_pid" 2>/dev/null || { cat "$BENCH_ROOT/logs/registry.log" >&2; echo "bench.sh: docker-registry exited" >&2; exit 1; }
  sleep 0.1
done
log "registry on $REGISTRY (pid $registry_pid); pushing bench images"
dotnet run --project "$REPO_ROOT/tests/CriRuntime.TestSupport" -c Release -- push-bench-images --registry "$REGISTRY" --large-mib 128 --layers 4 --extra-mib 16

IMAGE=$REGISTRY/bench/busybox:latest
PAUSE_IMAGE=$REGISTRY/bench/pause:latest
LARGE_IMAGE=$REGISTRY/bench/large:latest
SHARED_IMAGE=$REGISTRY/bench/shared:latest

# ---- shared configuration: one CNI conflist, one hosts.toml dir

cat >"$BENCH_ROOT/cni/net.d/10-bench.conflist" <<JSON
{
  "cniVersion": "1.0.0",
  "name": "criruntime-bench",
  "plugins": [
    {
      "type": "bridge",
      "bridge": "$BRIDGE",
      "isGateway": true,
      "ipMasq": false,
      "hairpinMode": true,
      "ipam": {
        "type": "host-local",
        "ranges": [[{ "subnet": "$SUBNET" }]],
        "routes": [{ "dst": "0.0.0.0/0" }],
        "dataDir": "$BENCH_ROOT/cni/ipam"
      }
    },
    { "type": "portmap", "capabilities": { "portMappings": true }, "snat": true }
  ]
}
JSON
mkdir -p "$BENCH_ROOT/hosts.d/$REGISTRY"
cat >"$BENCH_ROOT/hosts.d/$REGISTRY/hosts.toml" <<TOML
server = "http://$REGISTRY"

[host."http://$REGISTRY"]
  capabilities = ["pull", "resolve"]
TOML

# ---- criruntime

CR_SOCK=$BENCH_STATE/criruntime/criruntime.sock
cat >"$BENCH_ROOT/criruntime/config.toml" <<TOML
socket = "$CR_SOCK"
root = "$BENCH_ROOT/criruntime/root"
state = "$BENCH_STATE/criruntime/state"

[registry]
config_path = "$BENCH_ROOT/hosts.d"

[cni]
conf_dir = "$BENCH_ROOT/cni/net.d"
bin_dirs = ["/usr/lib/cni"]

[runtime]
default_handler = "runc"
conmon = "/usr/bin/conmon"

[runtime.handlers.runc]
path = "/usr/sbin/runc"

# containerd serves no metrics by default either.
[metrics]
address = ""
TOML

# ---- containerd: its defaults, except paths, the sandbox image, runc and CNI/registry dirs shared with criruntime

CD_SOCK=$BENCH_STATE/containerd/containerd.sock
# containerd gives the sandbox oom_score_adj -998, which needs CAP_SYS_RESOURCE to lower; where root lacks it
# (some VMs and containers), runc fails "can't get final child's PID from pipe", so clamp as containerd's
# rootless setups do. criruntime's containers keep the kubelet's value (1000 for BestEffort) either way.
restrict_oom=false
cap_eff=$(awk '/^CapEff:/ { print $2 }' /proc/self/status)
if (( (16#$cap_eff >> 24 & 1) == 0 )); then restrict_oom=true; log "no CAP_SYS_RESOURCE: containerd gets restrict_oom_score_adj = true"; fi
cat >"$BENCH_ROOT/containerd/config.toml" <<TOML
version = 2
root = "$BENCH_ROOT/containerd/root"
state = "$BENCH_STATE/containerd/state"

[grpc]
  address = "$CD_SOCK"

[ttrpc]
  address = "$CD_SOCK.ttrpc"

[debug]
  address = ""
  level = "${BENCH_CONTAINERD_LOG_LEVEL:-info}"

[metrics]
  address = ""

[plugins."io.containerd.internal.v1.opt"]
  path = "$BENCH_ROOT/containerd/opt"

[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "$PAUSE_IMAGE"
  restrict_oom_score_adj = $restrict_oom

  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"

    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"

      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        BinaryName = "/usr/sbin/runc"
        Root = "$BENCH_STATE/containerd/runc"
        SystemdCgroup = false

  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "/usr/lib/cni"
    conf_dir = "$BENCH_ROOT/cni/net.d"
    max_conf_num = 1

  [plugins."io.containerd.grpc.v1.cri".registry]
    config_path = "$BENCH_ROOT/hosts.d"
TOML

# ---- the floor: a runc bundle from the busybox image's layer, unpacked with tar

manifest=$(curl -sf -H 'Accept: application/vnd.oci.image.manifest.v1+json' "http://$REGISTRY/v2/bench/busybox/manifests/latest")
layer=$(jq -r '.layers[0].digest' <<<"$manifest")
curl -sf "http://$REGISTRY/v2/bench/busybox/blobs/$layer" | tar -xz -C "$BENCH_ROOT/floor/bundle/rootfs"
(cd "$BENCH_ROOT/floor/bundle" && runc spec)
jq --arg cg "$CGROUP_PARENT/floor" \
  '.process.args = ["sleep", "3600"] | .process.terminal = false | .linux.cgroupsPath = $cg' \
  "$BENCH_ROOT/floor/bundle/config.json" >"$BENCH_ROOT/floor/bundle/config.json.new"
mv "$BENCH_ROOT/floor/bundle/config.json.new" "$BENCH_ROOT/floor/bundle/config.json"

# ---- run

sizes=()
if [[ $quick -eq 1 ]]; then
  sizes=(--pods 5 --load-pods 8 --concurrency 4,8 --load-runs 1 --memory-pods 5 --list-calls 20 --pull-runs 1 --startup-runs 2 --floor-runs 3 --exec-runs 3)
fi

# Machine and versions, recorded in the JSON for BENCHMARKS.md.
commit=$(git -C "$REPO_ROOT" rev-parse --short HEAD 2>/dev/null || echo unknown)
[[ -n $(git -C "$REPO_ROOT" status --porcelain -- src hack 2>/dev/null) ]] && commit="$commit+uncommitted"
info=(
  --info "cpu=$(awk -F': ' '/^model name/ { print $2; exit }' /proc/cpuinfo)"
  --info "cores=$(nproc)"
  --info "memory=$(awk '/^MemTotal/ { printf "%.1f GiB", $2 / 1048576 }' /proc/meminfo)"
  --info "kernel=$(uname -r)"
  --info "os=$(. /etc/os-release && echo "$PRETTY_NAME")"
  --info "criruntimeCommit=$commit"
  --info "criruntimeBuild=$([[ ${CRIRUNTIME_JIT:-0} == 1 ]] && echo jit || echo native-aot)"
  --info "containerdVersion=$(containerd --version | awk '{ print $3 }')"
  --info "runcVersion=$(runc --version | awk 'NR == 1 { print $3 }')"
  --info "conmonVersion=$(conmon --version | awk 'NR == 1 { print $3 }')"
  --info "dotnetVersion=$(dotnet --version)"
  --info "cgroups=$(if [[ -f /sys/fs/cgroup/cgroup.controllers ]]; then echo v2; else echo v1; fi)"
  --info "quick=$quick"
)

read -r load1 _ </proc/loadavg
if awk -v l="$load1" -v c="$(nproc)" 'BEGIN { exit !(l > c / 2) }'; then
  log "WARNING: load average $load1 on $(nproc) cores: other work on this machine will skew the figures"
fi
# The pods' parent cgroup exists before any pod, as the kubelet's QoS cgroups (kubepods/...) do on a node:
# a runtime that makes a missing parent also removes it with the last pod (issue #13), which no node sees.
for hierarchy in /sys/fs/cgroup/*/ /sys/fs/cgroup/; do
  [[ $(stat -f -c %T "$hierarchy") == cgroup* ]] || continue
  mkdir -p "$hierarchy${CGROUP_PARENT#/}"
done
# Stock crictl v1.26.1 (hack/install-critools.sh) for the exec figures; without it they are skipped, with a word.
crictl_args=()
if [[ -x $REPO_ROOT/_output/critools/crictl ]]; then
  crictl_args=(--crictl "$REPO_ROOT/_output/critools/crictl")
elif critools=$("$REPO_ROOT/hack/install-critools.sh" 2>/dev/null | tail -n 1) && [[ -x $critools/crictl ]]; then
  crictl_args=(--crictl "$critools/crictl")
else
  log "no stock crictl (hack/install-critools.sh failed): the exec figures are skipped"
fi
log "running the benchmark"
tool_rc=0
"$BENCH_TOOL" run \
  --endpoint "unix://$CR_SOCK" --name criruntime \
    --start-command "exec '$REPO_ROOT/_output/bin/criruntime' --config '$BENCH_ROOT/criruntime/config.toml' >>'$BENCH_ROOT/logs/criruntime.log' 2>&1" \
    --helpers conmon,catatonit --helper-match "$BENCH_STATE/criruntime/" --infra catatonit \
    --content-dir "$BENCH_ROOT/criruntime/root" \
  --endpoint "unix://$CD_SOCK" --name containerd \
    --start-command "exec /usr/bin/containerd --config '$BENCH_ROOT/containerd/config.toml' >>'$BENCH_ROOT/logs/containerd.log' 2>&1" \
    --helpers containerd-shim --helper-match "$BENCH_STATE/containerd/" --infra catatonit \
    --content-dir "$BENCH_ROOT/containerd/root" \
  --image "$IMAGE" --large-image "$LARGE_IMAGE" --shared-image "$SHARED_IMAGE" \
  --cgroup-parent "$CGROUP_PARENT" --work-dir "$BENCH_ROOT/work" \
  --floor-bundle "$BENCH_ROOT/floor/bundle" --runc /usr/sbin/runc \
  ${crictl_args[@]+"${crictl_args[@]}"} \
  --out "$out" "${info[@]}" ${sizes[@]+"${sizes[@]}"} ${BENCH_TOOL_ARGS:-} || tool_rc=$?

if [[ $tool_rc -ne 0 ]]; then
  log "the bench tool failed ($tool_rc); last lines of the daemon logs:"
  tail -n 20 "$BENCH_ROOT/logs/criruntime.log" "$BENCH_ROOT/logs/containerd.log" >&2 || true
fi
# Keep the daemon logs next to the JSON; $BENCH_ROOT goes away in cleanup.
cp "$BENCH_ROOT/logs/criruntime.log" "${out%.json}.criruntime.log" 2>/dev/null || true
cp "$BENCH_ROOT/logs/containerd.log" "${out%.json}.containerd.log" 2>/dev/null || true
log "results: $out"
exit "$tool_rc"
