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
    local launcher=()
    # ccache (Debian) when present: a clean clone on the same machine reuses earlier objects.
    if command -v ccache >/dev/null 2>&1; then
        launcher=(-DCMAKE_CXX_COMPILER_LAUNCHER=ccache)
        # Objects do not depend on where the clone is: paths are hashed relative to it.
        export CCACHE_BASEDIR="$root" CCACHE_NOHASHDIR=true
    fi
    cmake -S "$root" -B "$build" -G Ninja -DCMAKE_BUILD_TYPE="$type" "${launcher[@]}" \
        ${PGW_CMAKE_ARGS:-} >/dev/null
    cmake --build "$build" -j"$(nproc)"
}
