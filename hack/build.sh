#!/usr/bin/env bash
# Builds the daemon into _output/bin/criruntime.
#
# Native AOT publish: one self-contained executable with no JIT, so the daemon starts in
# milliseconds, serves its first pod without warm-up and keeps a smaller resident set; nodes need no
# .NET runtime. Needs clang and zlib1g-dev (hack/install-deps.sh installs them). Set
# CRIRUNTIME_JIT=1 for a quicker framework-dependent build while iterating.
set -euo pipefail
cd "$(dirname "$0")/.."

configuration="${CONFIGURATION:-Release}"
case "$(uname -m)" in
  x86_64) rid=linux-x64 ;;
  aarch64) rid=linux-arm64 ;;
  *) echo "build.sh: unsupported machine $(uname -m)" >&2; exit 1 ;;
esac

rm -rf _output/bin
if [ "${CRIRUNTIME_JIT:-0}" = 1 ]; then
  dotnet publish src/CriRuntime/CriRuntime.csproj -c "$configuration" -o _output/bin --nologo -v quiet -p:PublishAot=false -p:UseAppHost=true
else
  dotnet publish src/CriRuntime/CriRuntime.csproj -c "$configuration" -r "$rid" -o _output/bin --nologo -v quiet
fi
echo "built _output/bin/criruntime ($(_output/bin/criruntime --version))"
