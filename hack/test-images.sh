#!/usr/bin/env bash
# Pushes criruntime's standard test images (built in-repo from Debian's busybox-static, see
# tests/CriRuntime.TestSupport) to a plain-HTTP registry.
#
#   hack/test-images.sh --registry HOST:PORT [--username U --password P]
#       push to that registry.
#   hack/test-images.sh
#       start (or reuse) Debian's docker-registry on 127.0.0.1:5000 in the background, storage under
#       /var/lib/criruntime-test-registry (pid file and log there too), then push to it.
#   hack/test-images.sh --stop
#       stop that background registry (storage is kept).
#
# Env: CRIRUNTIME_ARTIFACTS_PATH  passed to `dotnet run --artifacts-path` (keeps build output out of the tree).
# Needs hack/install-deps.sh to have run (docker-registry, busybox-static).
set -euo pipefail

REPO_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
STATE_DIR=/var/lib/criruntime-test-registry
PID_FILE=$STATE_DIR/registry.pid
LOG_FILE=$STATE_DIR/registry.log
CONFIG_FILE=$STATE_DIR/config.yml
LOCAL_ADDR=127.0.0.1:5000

registry=""
stop=0
push_args=()
while [[ $# -gt 0 ]]; do
  case $1 in
    --registry) registry=${2:?--registry needs HOST:PORT}; shift 2 ;;
    --username|--password|--large-mib) push_args+=("$1" "${2:?$1 needs a value}"); shift 2 ;;
    --stop) stop=1; shift ;;
    -h|--help) awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "$0"; exit 0 ;;
    *) echo "test-images.sh: unknown argument: $1 (see --help)" >&2; exit 2 ;;
  esac
done

# Our background registry is alive if the pid file names a running docker-registry.
running_pid() {
  [[ -f $PID_FILE ]] || return 1
  local pid
  pid=$(<"$PID_FILE")
  [[ -n $pid && -r /proc/$pid/cmdline ]] || return 1
  tr '\0' ' ' <"/proc/$pid/cmdline" | grep -q "docker-registry serve $CONFIG_FILE" || return 1
  echo "$pid"
}

answers_v2() {
  local code
  code=$(curl -s -o /dev/null -w '%{http_code}' --max-time 2 "http://$1/v2/" || true)
  [[ $code == 200 || $code == 401 ]]
}

if [[ $stop -eq 1 ]]; then
  if pid=$(running_pid); then
    kill "$pid"
    for _ in $(seq 50); do [[ -d /proc/$pid ]] || break; sleep 0.1; done
    echo "test-images.sh: stopped registry (pid $pid)"
  else
    echo "test-images.sh: no background registry running"
  fi
  rm -f "$PID_FILE"
  exit 0
fi

if [[ -z $registry ]]; then
  registry=$LOCAL_ADDR
  if pid=$(running_pid); then
    echo "test-images.sh: reusing registry on $LOCAL_ADDR (pid $pid)"
  else
    if answers_v2 "$LOCAL_ADDR"; then
      echo "test-images.sh: something else already answers on $LOCAL_ADDR (the packaged docker-registry service?);" \
           "stop it or pass --registry $LOCAL_ADDR to push there" >&2
      exit 1
    fi
    command -v docker-registry >/dev/null || { echo "test-images.sh: docker-registry missing: run hack/install-deps.sh" >&2; exit 1; }
    mkdir -p "$STATE_DIR/storage"
    cat >"$CONFIG_FILE" <<YAML
version: 0.1
log:
  level: info
storage:
  filesystem:
    rootdirectory: $STATE_DIR/storage
  delete:
    enabled: true
http:
  addr: $LOCAL_ADDR
  headers:
    X-Content-Type-Options: [nosniff]
YAML
    # setsid + nohup: the registry outlives this script; the pid file lets --stop find it.
    setsid nohup docker-registry serve "$CONFIG_FILE" >>"$LOG_FILE" 2>&1 </dev/null &
    echo $! >"$PID_FILE"
    for _ in $(seq 100); do
      answers_v2 "$LOCAL_ADDR" && break
      if ! running_pid >/dev/null; then
        echo "test-images.sh: docker-registry exited; last log lines:" >&2
        tail -n 20 "$LOG_FILE" >&2
        exit 1
      fi
      sleep 0.1
    done
    answers_v2 "$LOCAL_ADDR" || { echo "test-images.sh: registry did not answer on $LOCAL_ADDR; see $LOG_FILE" >&2; exit 1; }
    echo "test-images.sh: started registry on $LOCAL_ADDR (pid $(<"$PID_FILE"), storage $STATE_DIR/storage, log $LOG_FILE)"
  fi
fi

run_args=(--project "$REPO_ROOT/tests/CriRuntime.TestSupport")
if [[ -n ${CRIRUNTIME_ARTIFACTS_PATH:-} ]]; then
  run_args+=(--artifacts-path "$CRIRUNTIME_ARTIFACTS_PATH")
fi
dotnet run "${run_args[@]}" -- push-test-images --registry "$registry" ${push_args[@]+"${push_args[@]}"}
