/// A GEMM operand's elements: where they are and what precision they are in.
public enum GemmSource {
    case f32(UnsafePointer<Float>)
    case bf16(UnsafePointer<BFloat16>)

    public var precision: Precision {
        switch self { case .f32: .f32; case .bf16: .bf16 }
    }
    var raw: UnsafeRawPointer {
        switch self { case .f32(let p): UnsafeRawPointer(p); case .bf16(let p): UnsafeRawPointer(p) }
    }

    /// The operand `n` elements on (a row or a head further into the same storage).
    public func advanced(by n: Int) -> GemmSource {
        switch self { case .f32(let p): .f32(p + n); case .bf16(let p): .bf16(p + n) }
    }
}

/// Where a GEMM writes its result, and in what precision (accumulation is f32 either way).
public enum GemmDestination {
    case f32(UnsafeMutablePointer<Float>)
    case bf16(UnsafeMutablePointer<BFloat16>)

    public var precision: Precision {
        switch self { case .f32: .f32; case .bf16: .bf16 }
    }
    var raw: UnsafeMutableRawPointer {
        switch self { case .f32(let p): UnsafeMutableRawPointer(p); case .bf16(let p): UnsafeMutableRawPointer(p) }
    }
}

/// Which library or kernel serves a product. Every route computes the same thing for the same
/// precisions (bf16 weights: bf16 operands, f32 accumulation); they differ in speed, and in the
/// last bits through summation order.
public enum GemmRoute: String, Sendable, CaseIterable {
    /// Measured choices (one thread, see `Gemm.run(… a: GemmSource …)`):
    /// - bf16 weights: where oneDNN's bf16 is native on this CPU, the row kernel up to
    ///   `Gemm.rowKernelMaxRows` rows (a decode token or a small batch) and oneDNN's matmul above;
    ///   elsewhere the row kernel up to `Gemm.rowKernelMaxRowsWithoutNativeBF16` rows and the weight
    ///   widened to f32 for OpenBLAS above (oneDNN's emulated bf16 ran 31–34 GFLOP/s against 85–108);
    /// - f32 weights kept `[out, in]` at two rows or more, with oneDNN's AVX-512 kernels available:
    ///   oneDNN's matmul (1.2–2× OpenBLAS's sgemm there); every other f32 product: OpenBLAS.
    case automatic
    /// oneDNN's matmul whenever it can make one (emulated bf16 included); OpenBLAS where it cannot.
    case oneDNN
    /// OpenBLAS: f32 operands as they are, bf16 weights widened to f32 a block at a time into a
    /// bounded scratch first (the fallback).
    case openBLAS
    /// The bf16 row kernel at any row count (correct but slow past a few rows); f32 weights: OpenBLAS.
    case rows
    /// All-f32 products through OpenBLAS whatever their shape, bf16 weights as `.automatic`: for
    /// products whose shape changes from call to call (a cache that grows every decode step, a
    /// chunk of any length), where `.automatic` would make a oneDNN f32 primitive per new shape.
    case openBLASForF32
}

/// The kernel that ran a product, for reports ("which kernel ran").
public enum GemmKernel: Hashable, Sendable, CustomStringConvertible {
    /// No product: k = 0 or an empty output (C = beta · C).
    case empty
    /// OpenBLAS on f32 operands: "sgemm", or "sgemv" for one row or column.
    case openBLAS(String)
    /// oneDNN's matmul primitive and the implementation it chose, e.g. "brg:avx512_core_bf16".
    case oneDNN(String)
    /// The bf16 weight-streaming row kernel, at this instruction set.
    case bf16Rows(KernelISA)
    /// bf16 weights widened to f32 block by block for OpenBLAS ("sgemm" or "sgemv"), and why.
    case widened(String, reason: String)
    /// The fp8 row kernel (e4m3 bytes and block scales read directly), at this instruction set.
    case fp8Rows(KernelISA)
    /// fp8 weights dequantized a tile of rows at a time into bf16, each tile through this kernel.
    case fp8Tiles(String)
    /// The fixed-order kernels of the invariant forward (`FixedOrderGemm`), at this instruction set.
    case fixedOrder(KernelISA)

    public var description: String {
        switch self {
        case .empty: "no product (empty)"
        case .openBLAS(let routine): "OpenBLAS \(routine)"
        case .oneDNN(let implementation): "oneDNN matmul \(implementation)"
        case .bf16Rows(let isa): "bf16 row kernel (\(isa))"
        case .widened(let routine, let reason): "fallback: bf16 widened to f32, OpenBLAS \(routine) (\(reason))"
        case .fp8Rows(let isa): "fp8 row kernel (\(isa))"
        case .fp8Tiles(let inner): "fp8 dequantized per tile to bf16, then \(inner)"
        case .fixedOrder(let isa): "fixed-order kernel (\(isa))"
        }
    }
}
