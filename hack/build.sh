#!/usr/bin/env bash
# Builds the daemon into _output/bin/criruntime.
#
# Framework-dependent publish: developer and CI machines have the .NET SDK (so the runtime) anyway,
# the output is ~10 MB instead of ~80, and the build is quicker. The Debian package
# (packaging/debian/build-deb.sh) is self-contained instead, because nodes have no .NET.
set -euo pipefail
cd "$(dirname "$0")/.."

configuration="${CONFIGURATION:-Release}"
dotnet publish src/CriRuntime/CriRuntime.csproj -c "$configuration" -o _output/bin --nologo -v quiet -p:UseAppHost=true
echo "built _output/bin/criruntime ($(_output/bin/criruntime --version))"
