# Shared by the launch scripts: install what is missing, build, and the mpirun flags this
# kind of machine needs. Source it; do not run it.

MLATP_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
export PATH="/opt/swift/usr/bin:$PATH"

# Installs the Debian packages named in "$@" with one line on the terminal; apt's own output
# goes to a log whose tail is shown only when the install fails.
mlatp_apt_install() {
    local sudo="" log="${TMPDIR:-/tmp}/mla-tp-apt.log"
    [ "$(id -u)" -ne 0 ] && sudo="sudo"
    echo "launch: installing $* (apt-get; log in $log)…" >&2
    if ! { $sudo apt-get update -qq && DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "$@"; } >"$log" 2>&1; then
        echo "launch: apt-get install $* failed; the end of $log:" >&2
        tail -n 20 "$log" >&2
        return 1
    fi
}

# Installs Open MPI, OpenBLAS and oneDNN (Debian packages) unless they are already there:
# pkg-config finds the first two; oneDNN ships no .pc file, so its header is looked for.
mlatp_ensure_deps() {
    # As root, also iproute2 (`ip`, for launch/two-hosts and its tests, which need root).
    if [ "$(id -u)" -eq 0 ] && ! command -v ip >/dev/null && command -v apt-get >/dev/null; then
        mlatp_apt_install iproute2 || echo "launch: could not install iproute2; the two-host tests will be skipped" >&2
    fi
    local dnnl_header=/usr/include/oneapi/dnnl/dnnl.h
    if pkg-config --exists ompi-c openblas 2>/dev/null && command -v mpirun >/dev/null && [ -f "$dnnl_header" ]; then
        return 0
    fi
    mlatp_apt_install libopenmpi-dev openmpi-bin libopenblas-dev libdnnl-dev pkg-config || return 1
    pkg-config --exists ompi-c openblas && [ -f "$dnnl_header" ] || {
        echo "launch: Open MPI / OpenBLAS / oneDNN still missing after apt-get — install them by hand" >&2
        return 1
    }
}

# mpirun's flags for N ranks here: quiet (our own one-line errors are the message), a timeout
# so that a hang always ends, one BLAS and one OpenMP thread per rank, root allowance, and
# oversubscription only past the core count. The same policy as MPILauncher (Sources/Launch).
mlatp_mpirun_flags() {
    local n="$1" timeout="${MLATP_TIMEOUT:-600}"
    local flags=(-q -n "$n" --timeout "$timeout" -x OPENBLAS_NUM_THREADS=1 -x OMP_NUM_THREADS=1)
    [ "$(id -u)" -eq 0 ] && flags+=(--allow-run-as-root)
    [ "$n" -gt "$(nproc)" ] && flags+=(--oversubscribe)
    printf '%s\n' "${flags[@]}"
}

# The most ranks one job may start on CORES cores (default: this machine's): 4 per core, at
# least 16. Past it a job only thrashes (mpirun -n 999 on 2 cores crashed in Open MPI's
# teardown). The same bound as MPILauncher.maxRanks (Sources/Launch).
mlatp_max_ranks() {
    local cores="${1:-$(nproc)}"
    echo $(( 4 * cores > 16 ? 4 * cores : 16 ))
}

# Removes what Open MPI left of jobs whose mpirun (or orted) was killed outright, in every
# session folder $TMPDIR/ompi.HOST.UID of this user (HOST: this machine, or a launch/two-hosts host):
#   - pid.PID (up to 8 MB), the folder of the mpirun or orted PID, once that process is gone;
#     its job family is the top half of the job id in its contact.txt;
#   - that family's shared-memory segments, /dev/shm/vader_segment.HOST.UID.JOB.RANK;
#   - jf.FAMILY, the folder of a rank with no mpirun of its own (an MPI singleton, whose orted
#     is a pid.PID), once no live pid.PID holds that family.
# A folder whose process still runs is never touched.
mlatp_clear_stale_sessions() {
    local uid dir pid family live=" "
    uid="$(id -u)"
    for dir in "${TMPDIR:-/tmp}"/ompi.*."$uid"/pid.*; do
        pid="${dir##*/pid.}"
        case "$pid" in ''|*[!0-9]*) continue;; esac
        [ -d "$dir" ] || continue
        family="$(sed -n '1s/^\([0-9]*\)[.;].*/\1/p' "$dir/contact.txt" 2>/dev/null || true)"
        [ -n "$family" ] && family=$((family >> 16))
        if [ -e "/proc/$pid" ]; then live="$live$family "; continue; fi
        if [ -n "$family" ] && [ "$family" -gt 0 ]; then
            rm -f /dev/shm/vader_segment.*."$uid".$(printf '%x' "$family")????.*
        fi
        rm -rf "$dir"
    done
    for dir in "${TMPDIR:-/tmp}"/ompi.*."$uid"/jf.*; do
        family="${dir##*/jf.}"
        case "$family" in ''|*[!0-9]*) continue;; esac
        [[ "$live" == *" $family "* ]] || rm -rf "$dir"
    done
}
