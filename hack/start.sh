#!/usr/bin/env bash
# Sets this machine up and starts criruntime with a working default config:
# installs missing Debian packages, builds the daemon, installs it under /usr/local, writes
# /etc/criruntime/config.toml if there is none, and starts the daemon — as a systemd service where
# systemd runs, otherwise in the background (log: /var/log/criruntime.log). Safe to run again:
# it restarts the daemon with the fresh build.
set -euo pipefail
cd "$(dirname "$0")/.."

if [ "$(id -u)" != 0 ]; then
  echo "hack/start.sh: run as root (the daemon mounts filesystems and manages namespaces)" >&2
  exit 1
fi

hack/install-deps.sh
# Let crun run on hybrid cgroup hosts too (mounts v1 controllers left on the unified hierarchy).
hack/setup-cgroups.sh
# A default CNI network (bridge + host-local + portmap) when /etc/cni/net.d has none.
hack/install-cni-config.sh
hack/build.sh

prefix=/usr/local/lib/criruntime
rm -rf "$prefix.new"
cp -a _output/bin "$prefix.new"
rm -rf "$prefix" && mv "$prefix.new" "$prefix"
ln -sfn "$prefix/criruntime" /usr/local/bin/criruntime

mkdir -p /etc/criruntime/certs.d
if [ ! -f /etc/criruntime/config.toml ]; then
  /usr/local/bin/criruntime config default >/etc/criruntime/config.toml
  echo "wrote /etc/criruntime/config.toml (defaults)"
fi
socket="$(sed -n 's/^socket *= *"\(.*\)".*/\1/p' /etc/criruntime/config.toml)"
socket="${socket:-/run/criruntime/criruntime.sock}"

if [ -d /run/systemd/system ]; then
  sed 's|^ExecStart=/usr/bin/criruntime|ExecStart=/usr/local/bin/criruntime|' packaging/systemd/criruntime.service \
    >/etc/systemd/system/criruntime.service
  systemctl daemon-reload
  systemctl enable criruntime >/dev/null 2>&1
  systemctl restart criruntime
  how="systemd unit criruntime (journalctl -u criruntime)"
else
  pidfile=/run/criruntime.pid
  # Only a pid that is still criruntime is ours to stop (pids are reused after a crash).
  old="$(cat "$pidfile" 2>/dev/null || true)"
  if [ -n "$old" ] && [ "$(cat "/proc/$old/comm" 2>/dev/null)" = criruntime ]; then
    kill -TERM "$old"
    for _ in $(seq 50); do kill -0 "$old" 2>/dev/null || break; sleep 0.2; done
    if kill -0 "$old" 2>/dev/null; then
      echo "hack/start.sh: the running criruntime (pid $old) did not stop within 10 s of SIGTERM; stop it and run this again" >&2
      exit 1
    fi
  fi
  # The umask the systemd unit sets (UMask=0077): what the daemon makes without an explicit mode is its own.
  # The log names pods, containers and images: root's alone, like the state it describes.
  (umask 077 && touch /var/log/criruntime.log) && chmod 600 /var/log/criruntime.log
  (umask 077 && exec setsid nohup /usr/local/bin/criruntime --config /etc/criruntime/config.toml) >>/var/log/criruntime.log 2>&1 </dev/null &
  echo $! >"$pidfile"
  how="background process $(cat "$pidfile") (log: /var/log/criruntime.log, pid file: $pidfile)"
fi

# Ready when a CRI Version call over the socket answers with grpc-status 0.
for _ in $(seq 100); do
  if [ -S "$socket" ] && curl -sS --http2-prior-knowledge --unix-socket "$socket" \
      -H 'content-type: application/grpc' -H 'te: trailers' --data-binary @<(printf '\0\0\0\0\0') \
      -D - -o /dev/null http://localhost/runtime.v1.RuntimeService/Version 2>/dev/null | grep -qi '^grpc-status: *0'; then
    echo "criruntime is serving unix://$socket as a $how"
    exit 0
  fi
  sleep 0.2
done
echo "criruntime did not answer on $socket within 20s; see the log" >&2
[ -f /var/log/criruntime.log ] && tail -n 30 /var/log/criruntime.log >&2
exit 1
