#!/usr/bin/env bash
# Installs what is missing, builds, and runs every test: unit tests, then the integration tests
# that drive the real daemon against Debian's docker-registry on 127.0.0.1. Must run as root
# (overlay mounts, device nodes, trusted xattrs). Prints "N passed, N failed" at the end.
set -euo pipefail
cd "$(dirname "$0")/.."

if [ "$(id -u)" != 0 ]; then
  echo "hack/test.sh: the tests need root (overlay mounts, whiteout devices, trusted.* xattrs); run it as root" >&2
  exit 1
fi

hack/install-deps.sh
# Stock crictl/critest v1.26.1 into _output/critools; without them the crictl tests fail and say so.
hack/install-critools.sh >/dev/null || echo "hack/test.sh: no crictl/critest (see hack/install-critools.sh); the crictl tests will fail" >&2
# Let crun run on hybrid cgroup hosts too (mounts v1 controllers left on the unified hierarchy).
hack/setup-cgroups.sh
hack/build.sh

results="$(mktemp -d)"
trap 'rm -rf "$results"' EXIT
status=0
for project in tests/CriRuntime.Tests tests/CriRuntime.IntegrationTests; do
  name="$(basename "$project")"
  echo "=== $name"
  if ! dotnet test "$project" -c Release --nologo \
      --logger "console;verbosity=normal" --logger "trx;LogFileName=$name.trx" --results-directory "$results" \
      2>&1 | tee "$results/$name.log"; then
    status=1
  fi
done

# One closing line over both projects, counted from the test results.
passed=0; failed=0; skipped=0
for trx in "$results"/*.trx; do
  [ -f "$trx" ] || continue
  counters="$(grep -o '<Counters [^>]*>' "$trx" | head -n1)"
  p="$(sed -n 's/.* passed="\([0-9]*\)".*/\1/p' <<<"$counters")"
  f="$(sed -n 's/.* failed="\([0-9]*\)".*/\1/p' <<<"$counters")"
  n="$(sed -n 's/.* notExecuted="\([0-9]*\)".*/\1/p' <<<"$counters")"
  passed=$((passed + ${p:-0})); failed=$((failed + ${f:-0})); skipped=$((skipped + ${n:-0}))
done
if [ "$passed" -eq 0 ]; then
  echo "no test ran" >&2
  status=1
fi
[ "$failed" -eq 0 ] || status=1
# Repeat each failure with its message at the very end, where a truncated CI log still shows it.
if [ "$failed" -ne 0 ]; then
  echo "=== failures"
  for log in "$results"/*.log; do
    grep -E -A 12 '^\s+Failed [A-Za-z]' "$log" | cut -c1-400 || true
  done
fi
echo "${passed} passed, ${failed} failed, ${skipped} skipped"
exit "$status"
