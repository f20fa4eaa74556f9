#!/usr/bin/env bash
# Builds this Maven project (Apache RocketMQ's name server and broker, the
# official Java client, and the test's Launcher and Client) when its
# classpath is missing or its pom or sources changed since the last build
# (target/build.sha256 holds their hash). Cold (empty ~/.m2) it downloads
# 124 MB from Maven Central; warm it is a compile of two classes. Used by
# .ci/run and the RocketMQ benchmarks.
set -euo pipefail
cd "$(dirname "$0")"
hash="$(cat pom.xml $(find src -type f | sort) | sha256sum | cut -d' ' -f1)"
if [ ! -f target/classpath.txt ] || [ "$(cat target/build.sha256 2>/dev/null)" != "$hash" ]; then
  mvn -B -q -f pom.xml package
  echo "$hash" > target/build.sha256
fi
