#!/usr/bin/env bash
# Makes sure a Docker daemon answers: if `docker info` fails and dockerd is installed and we are
# root, starts dockerd in the background and waits for it (at most EARSHOT_DOCKERD_WAIT seconds,
# default 60). Exit 0 when Docker answers; 1 with the reason on stderr otherwise.
# Installing Docker is not done here: .ci/run installs Debian's docker.io.
set -euo pipefail
if ! command -v docker >/dev/null 2>&1; then
  echo "docker is not installed (Debian: apt-get install docker.io)" >&2
  exit 1
fi
if docker info >/dev/null 2>&1; then exit 0; fi
if ! command -v dockerd >/dev/null 2>&1; then
  echo "no Docker daemon answers and dockerd is not installed (Debian: apt-get install docker.io)" >&2
  exit 1
fi
if [ "$(id -u)" -ne 0 ]; then
  echo "no Docker daemon answers, and only root may start dockerd" >&2
  exit 1
fi
log=${EARSHOT_DOCKERD_LOG:-/var/log/earshot-dockerd.log}
# setsid: the daemon outlives this script and the test run (later runs reuse it).
setsid dockerd >>"$log" 2>&1 < /dev/null &
wait_s=${EARSHOT_DOCKERD_WAIT:-60}
for _ in $(seq 1 "$((wait_s * 2))"); do
  if docker info >/dev/null 2>&1; then exit 0; fi
  sleep 0.5
done
echo "dockerd did not answer within ${wait_s} s; its log ($log) ends:" >&2
tail -n 20 "$log" >&2 || true
exit 1
