# Shared by the scripts: where the build lives and which user runs PostgreSQL.
# shellcheck shell=bash

repo_root() { cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd; }

# PostgreSQL refuses to run as root. When we are root, servers run as the postgres user, so
# the binaries must be reachable by it: a build tree under a root-only home is not, and then
# the build goes to /var/tmp instead.
build_dir() {
    local root="$1"
    if [ -n "${PGW_BUILD_DIR:-}" ]; then
        echo "$PGW_BUILD_DIR"
    elif [ "$(id -u)" -eq 0 ] && ! runuser -u postgres -- test -x "$root" 2>/dev/null; then
        echo "/var/tmp/pgwarden-build-$(echo "$root" | md5sum | cut -c1-8)"
    else
        echo "$root/build"
    fi
}

configure_and_build() {
    local root="$1" build="$2" type="${3:-RelWithDebInfo}"
    cmake -S "$root" -B "$build" -G Ninja -DCMAKE_BUILD_TYPE="$type" >/dev/null
    cmake --build "$build" -j"$(nproc)"
}
