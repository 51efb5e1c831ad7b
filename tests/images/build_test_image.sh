#!/bin/sh
# Builds the test image localhost/rai-test:latest from a static busybox, without any registry.
# Idempotent: does nothing when the image exists (pass --force to rebuild).
#   tests/images/build_test_image.sh [--force]
# Needs: podman (or docker) and a statically linked busybox (Debian/Ubuntu: apt-get install busybox-static).
# RAI_TEST_ENGINE=podman|docker picks the engine (default: podman where installed, else docker); docker
# imports into the daemon at DOCKER_HOST (./dev points it at the project's own dockerd).
set -eu

IMAGE="${RAI_TEST_IMAGE:-localhost/rai-test:latest}"
FORCE=0
[ "${1:-}" = "--force" ] && FORCE=1

if [ -n "${RAI_TEST_ENGINE:-}" ]; then
    ENGINE="$RAI_TEST_ENGINE"
    command -v "$ENGINE" >/dev/null 2>&1 || { echo "build_test_image.sh: $ENGINE is not installed" >&2; exit 1; }
elif command -v podman >/dev/null 2>&1; then
    ENGINE=podman
elif command -v docker >/dev/null 2>&1; then
    ENGINE=docker
else
    echo "build_test_image.sh: neither podman nor docker is installed" >&2
    exit 1
fi

if [ "$FORCE" = 0 ] && $ENGINE image inspect "$IMAGE" >/dev/null 2>&1; then
    echo "$IMAGE exists"
    exit 0
fi

BUSYBOX="${BUSYBOX:-}"
for b in "$BUSYBOX" /bin/busybox /usr/bin/busybox "$(command -v busybox 2>/dev/null || true)"; do
    if [ -n "$b" ] && [ -x "$b" ]; then BUSYBOX="$b"; break; fi
done
if [ -z "$BUSYBOX" ] || [ ! -x "$BUSYBOX" ]; then
    echo "build_test_image.sh: busybox not found (apt-get install busybox-static)" >&2
    exit 1
fi
if command -v ldd >/dev/null 2>&1 && ldd "$BUSYBOX" >/dev/null 2>&1; then
    echo "build_test_image.sh: $BUSYBOX is dynamically linked; install busybox-static" >&2
    exit 1
fi

WORK="$(mktemp -d)"
trap 'rm -rf "$WORK"' EXIT INT TERM
ROOT="$WORK/root"
mkdir -p "$ROOT/bin" "$ROOT/etc" "$ROOT/tmp" "$ROOT/root" "$ROOT/proc" "$ROOT/sys" "$ROOT/dev"
chmod 1777 "$ROOT/tmp"
cp "$BUSYBOX" "$ROOT/bin/busybox"
for applet in $("$BUSYBOX" --list); do
    [ "$applet" = busybox ] || ln -sf busybox "$ROOT/bin/$applet"
done
printf 'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/false\n' > "$ROOT/etc/passwd"
printf 'root:x:0:\nnogroup:x:65534:\n' > "$ROOT/etc/group"

tar -C "$ROOT" -cf "$WORK/rootfs.tar" .
$ENGINE import --change 'ENV PATH=/bin' --change 'CMD ["/bin/sh"]' "$WORK/rootfs.tar" "$IMAGE" >/dev/null
echo "built $IMAGE"
