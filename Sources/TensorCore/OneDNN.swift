import CDNNL
import CKernels
import Foundation

/// A oneDNN call that failed: which call, and oneDNN's own name for the status.
public struct DNNLError: Error, Equatable, CustomStringConvertible {
    public var call: String
    public var status: Int
    public var message: String

    /// oneDNN could not make a primitive for this configuration on this CPU (e.g. a bf16
    /// matmul where the instruction set has no bf16 path, as on AVX2).
    public var isUnimplemented: Bool { status == Int(dnnl_unimplemented.rawValue) }

    public var description: String { "oneDNN \(call) failed: \(message) (status \(status))" }
}

/// Process-wide facts about oneDNN, and the one checked path every oneDNN call goes through.
public enum OneDNN {
    /// How well oneDNN can run a bf16 matmul on this CPU, as capped by `DNNL_MAX_CPU_ISA`.
    public enum BF16Support: String, Sendable {
        /// The ISA has bf16 dot-product instructions (`avx512_core_bf16`, AMX): oneDNN's fast path.
        case native
        /// AVX-512 without bf16 instructions: oneDNN converts in software (measured ≈ 38 GFLOP/s
        /// at [256, 7168]·[7168, 8192], slower than widening to f32 for OpenBLAS).
        case emulated
        /// No bf16 matmul at all (AVX2 and below: primitive creation returns `unimplemented`).
        case unavailable
    }

    /// The instruction set oneDNN dispatches to (its `dnnl_cpu_isa_t` value).
    public static var effectiveISA: UInt32 { dnnl_get_effective_cpu_isa().rawValue }

    /// Whether oneDNN dispatches to its AVX-512 (brgemm) kernels, which serve f32 `[out, in]`
    /// products faster than OpenBLAS here; on AVX2 its f32 matmul is several times slower.
    public static var hasAVX512Core: Bool {
        effectiveISA & dnnl_cpu_isa_avx512_core.rawValue == dnnl_cpu_isa_avx512_core.rawValue
    }

    public static var bf16Support: BF16Support {
        let isa = effectiveISA
        if isa & dnnl_cpu_isa_avx512_core_bf16.rawValue == dnnl_cpu_isa_avx512_core_bf16.rawValue { return .native }
        if hasAVX512Core { return .emulated }
        return .unavailable
    }

    /// oneDNN's version, e.g. "2.6.3".
    public static var version: String {
        guard let v = dnnl_version() else { return "unknown" }
        return "\(v.pointee.major).\(v.pointee.minor).\(v.pointee.patch)"
    }

    /// One OpenMP thread (oneDNN's runtime here is libgomp) unless `OMP_NUM_THREADS` says otherwise:
    /// with one MPI rank per core, more threads only oversubscribe the cores.
    public static func defaultToOneThreadPerRank() {
        if ProcessInfo.processInfo.environment["OMP_NUM_THREADS"] == nil { _ = mlatp_openmp_set_threads(1) }
    }

    /// The OpenMP threads oneDNN's next parallel region would use (nil when no OpenMP runtime is loaded).
    public static var threads: Int? {
        let n = mlatp_openmp_max_threads()
        return n < 0 ? nil : Int(n)
    }

    /// Runs one oneDNN call and turns a failure into `DNNLError` carrying oneDNN's status name.
    @inline(__always)
    static func check(_ call: String, _ status: dnnl_status_t) throws(DNNLError) {
        guard status != dnnl_success else { return }
        let name = dnnl_status2str(status).map { String(cString: $0) } ?? "unknown status"
        throw DNNLError(call: call, status: Int(status.rawValue), message: name)
    }
}
