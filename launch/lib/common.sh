# Shared by the launch scripts: install what is missing, build, and the mpirun flags this
# kind of machine needs. Source it; do not run it.

MLATP_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
export PATH="/opt/swift/usr/bin:$PATH"

# Installs Open MPI and OpenBLAS (Debian packages) unless pkg-config already finds them; as
# root, also iproute2 (`ip`, for launch/two-hosts and its tests, which need root) if missing.
mlatp_ensure_deps() {
    if [ "$(id -u)" -eq 0 ] && ! command -v ip >/dev/null && command -v apt-get >/dev/null; then
        { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq iproute2; } >/dev/null 2>&1 \
            || echo "launch: could not install iproute2; the two-host tests will be skipped" >&2
    fi
    if pkg-config --exists ompi-c openblas 2>/dev/null && command -v mpirun >/dev/null; then
        return 0
    fi
    echo "launch: installing Open MPI and OpenBLAS (libopenmpi-dev openmpi-bin libopenblas-dev)…" >&2
    local sudo=""
    [ "$(id -u)" -ne 0 ] && sudo="sudo"
    $sudo apt-get update -qq >&2
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq libopenmpi-dev openmpi-bin libopenblas-dev pkg-config >&2
    pkg-config --exists ompi-c openblas || { echo "launch: Open MPI / OpenBLAS still missing after apt-get — install them by hand" >&2; return 1; }
}

# mpirun's flags for N ranks here: root allowance, oversubscription past the core count,
# a timeout so that a hang always ends, quiet (our own one-line errors are the message),
# and one BLAS thread per rank.
mlatp_mpirun_flags() {
    local n="$1" timeout="${MLATP_TIMEOUT:-600}"
    local flags=(-q -n "$n" --timeout "$timeout" -x OPENBLAS_NUM_THREADS=1)
    [ "$(id -u)" -eq 0 ] && flags+=(--allow-run-as-root)
    [ "$n" -gt "$(nproc)" ] && flags+=(--oversubscribe)
    printf '%s\n' "${flags[@]}"
}
