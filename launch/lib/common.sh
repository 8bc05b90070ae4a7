# Shared by the launch scripts: install what is missing, build, and the mpirun flags this
# kind of machine needs. Source it; do not run it.

MLATP_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
export PATH="/opt/swift/usr/bin:$PATH"

# Installs Open MPI, OpenBLAS and oneDNN (Debian packages) unless they are already there:
# pkg-config finds the first two; oneDNN ships no .pc file, so its header is looked for.
mlatp_ensure_deps() {
    local dnnl_header=/usr/include/oneapi/dnnl/dnnl.h
    if pkg-config --exists ompi-c openblas 2>/dev/null && command -v mpirun >/dev/null && [ -f "$dnnl_header" ]; then
        return 0
    fi
    echo "launch: installing Open MPI, OpenBLAS and oneDNN (libopenmpi-dev openmpi-bin libopenblas-dev libdnnl-dev)…" >&2
    local sudo=""
    [ "$(id -u)" -ne 0 ] && sudo="sudo"
    $sudo apt-get update -qq >&2
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq libopenmpi-dev openmpi-bin libopenblas-dev libdnnl-dev pkg-config >&2
    pkg-config --exists ompi-c openblas && [ -f "$dnnl_header" ] || {
        echo "launch: Open MPI / OpenBLAS / oneDNN still missing after apt-get — install them by hand" >&2
        return 1
    }
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
