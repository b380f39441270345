#!/usr/bin/env bash
# Ensures the Debian packages Chain needs are installed. Idempotent and silent when nothing is missing.
# As root it uses apt-get, otherwise sudo if available; without either it prints the command and exits 1.
# All output goes to stderr (callers such as './chain get KEY -' own stdout).
set -euo pipefail

# iproute2 and iptables: the consistency harness isolates processes in network namespaces (nemeses).
# ccache, gcc and bazel-bootstrap: the build-cache tests run the real tools against the gateway's cache endpoints.
# awscli, s3cmd, rclone, python3-boto3: the S3 gateway tests run these real clients (tests/Chain.Gateway.Tests).
# ethtool, aria2, opentracker, mktorrent: the distribution benchmark (tools/Chain.DistBench) turns veth offloads off and
# runs its BitTorrent baseline with them.
PACKAGES=(librocksdb7.8 librocksdb-dev python3-grpcio python3-grpc-tools protobuf-compiler iproute2 iptables ccache gcc bazel-bootstrap awscli s3cmd rclone python3-boto3 ethtool aria2 opentracker mktorrent)

if ! command -v dpkg-query >/dev/null 2>&1; then
    echo "setup-deps: dpkg-query not found: this script supports Debian/Ubuntu only; install by hand: ${PACKAGES[*]}" >&2
    exit 1
fi

missing=()
for package in "${PACKAGES[@]}"; do
    status="$(dpkg-query -W -f='${db:Status-Status}' "$package" 2>/dev/null || true)"
    if [ "$status" != "installed" ]; then
        missing+=("$package")
    fi
done
if [ "${#missing[@]}" -eq 0 ]; then
    exit 0
fi

install_command="apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends ${missing[*]}"
if [ "$(id -u)" -eq 0 ]; then
    run=()
elif command -v sudo >/dev/null 2>&1; then
    run=(sudo)
else
    echo "setup-deps: missing packages: ${missing[*]}" >&2
    echo "setup-deps: run as root: $install_command" >&2
    exit 1
fi

echo "setup-deps: installing ${missing[*]}" >&2
"${run[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update >&2
"${run[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "${missing[@]}" >&2
