#!/bin/sh
# A local stand-in for the official node:22-bookworm-slim image, for machines
# that cannot pull from Docker Hub (the project's CI machines). It has what
# docker/Dockerfile relies on in the real image and nothing else:
#   - a Debian bookworm root file system (debootstrap, minbase: Debian's own
#     packages, from the mirror apt already uses);
#   - Node 22 at /usr/local/bin/node: the binary of the project's own `node`
#     devDependency (node_modules/node/bin/node, from the npm registry);
#   - npm 10 (the line node:22 ships) at /usr/local/lib/node_modules/npm, packed
#     from the npm registry;
#   - the user `node`, uid and gid 1000, home /home/node, as in the real image;
#   - when the host sets NODE_EXTRA_CA_CERTS (a TLS-inspecting proxy between
#     this machine and the registry), that bundle, so `npm ci` in a build can
#     reach the registry. The real image has no such thing and needs none.
#
#   sudo sh docker/standin-base.sh [TAG]    (default iot-edge/node:22-bookworm-standin)
#
# then build the endpoint on it:
#   docker build -f docker/Dockerfile --build-arg NODE_IMAGE=iot-edge/node:22-bookworm-standin -t iot-edge-endpoint .
# Root is needed for debootstrap and chroot. Takes about a minute.
set -eu

TAG="${1:-iot-edge/node:22-bookworm-standin}"
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
NODE_BIN="$ROOT/node_modules/node/bin/node"
MIRROR="${DEBIAN_MIRROR:-http://deb.debian.org/debian}"

die() { echo "standin-base: $*" >&2; exit 1; }
[ "$(id -u)" = 0 ] || die "needs root (debootstrap, chroot)"
command -v debootstrap >/dev/null 2>&1 || [ -x /usr/sbin/debootstrap ] || die "needs debootstrap: apt-get install -y debootstrap"
[ -x "$NODE_BIN" ] || die "no $NODE_BIN: run npm install first"
NODE_VERSION="$("$NODE_BIN" --version)"
case "$NODE_VERSION" in v22.*) ;; *) die "node_modules/node is $NODE_VERSION, not Node 22" ;; esac

WORK="$(mktemp -d /tmp/iot-standin.XXXXXX)"
trap 'rm -rf "$WORK"' EXIT INT TERM
FS="$WORK/rootfs"

echo "standin-base: debootstrap bookworm (minbase) from $MIRROR"
PATH="$PATH:/usr/sbin:/sbin" debootstrap --variant=minbase bookworm "$FS" "$MIRROR" >"$WORK/debootstrap.log" 2>&1 \
  || { tail -20 "$WORK/debootstrap.log" >&2; die "debootstrap failed (log above)"; }

echo "standin-base: Node $NODE_VERSION, npm 10, user node"
install -m 0755 "$NODE_BIN" "$FS/usr/local/bin/node"
mkdir -p "$FS/usr/local/lib/node_modules/npm"
(cd "$WORK" && npm pack --silent npm@10 >/dev/null) || die "npm pack npm@10 failed"
tar -xzf "$WORK"/npm-10*.tgz -C "$FS/usr/local/lib/node_modules/npm" --strip-components=1
ln -s ../lib/node_modules/npm/bin/npm-cli.js "$FS/usr/local/bin/npm"
ln -s ../lib/node_modules/npm/bin/npx-cli.js "$FS/usr/local/bin/npx"
chroot "$FS" groupadd --gid 1000 node
chroot "$FS" useradd --uid 1000 --gid node --shell /bin/bash --create-home node

EXTRA_ENV=""
if [ -n "${NODE_EXTRA_CA_CERTS:-}" ] && [ -f "$NODE_EXTRA_CA_CERTS" ]; then
  mkdir -p "$FS/etc/ssl/certs"
  cp "$NODE_EXTRA_CA_CERTS" "$FS/etc/ssl/certs/host-ca-bundle.crt"
  EXTRA_ENV="NODE_EXTRA_CA_CERTS=/etc/ssl/certs/host-ca-bundle.crt"
fi
# What the package manager left behind: not needed in an image.
rm -rf "$FS"/var/cache/apt/archives/*.deb "$FS"/var/lib/apt/lists/* "$FS"/tmp/*

echo "standin-base: importing as $TAG"
set -- --change "ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin" \
  --change "ENV NODE_VERSION=${NODE_VERSION#v}" \
  --change 'CMD ["node"]'
[ -z "$EXTRA_ENV" ] || set -- "$@" --change "ENV $EXTRA_ENV"
tar -C "$FS" -c . | docker import "$@" - "$TAG" >/dev/null
docker image inspect --format 'standin-base: {{.RepoTags}} {{.Size}} bytes' "$TAG"
