import TensorCore
import TensorParallel

/// A decode step's weight streaming, for the rate probe: one token's row through the product a
/// decode step's projections run, on a 64 MiB weight held as the run holds its weights (f32
/// `[in, out]` through OpenBLAS; bf16 `[out, in]` and fp8 block-scaled `[out, in]` through the
/// row kernels, which read the stored bytes). Weight bytes over seconds is the rate a
/// memory-bound stage streams at: unlike memcpy's, it counts bytes read only, as the model does.
public struct StreamProbe {
    /// How the weight is held: `f32`, `bf16` or `fp8`.
    public let format: String
    /// Bytes of the weight (values, and an fp8 weight's scales).
    public let weightBytes: Int
    private let x: Matrix        // [1, in]
    private let weight: Held

    private enum Held {
        case gemm(GemmProbe)
        case fp8(FP8BlockMatrix)
    }

    /// Input features of the probe's weight; the output rows fill `bytes`.
    public static let inFeatures = 4096

    public init(storage: any WeightStorage.Type, bytes: Int = 64 << 20) {
        let k = StreamProbe.inFeatures
        x = Matrix(rows: 1, cols: k, repeating: 0.5)
        if storage.quantization == .fp8 {
            let n = max(bytes / k / 128, 1) * 128, blocks = (n / 128) * (k / 128)
            format = "fp8"
            weight = .fp8(FP8BlockMatrix(rows: n, cols: k, blockSize: 128, values: [UInt8](repeating: 0x38, count: n * k),  // e4m3 1.0
                                         scales: [Float](repeating: 1.0 / 64, count: blocks), scaleCols: k / 128, rowOffset: 0, columnOffset: 0))
            weightBytes = n * k + 4 * blocks
        } else if storage.activations == .bf16 {
            let n = max(bytes / (2 * k), 1)
            format = "bf16"
            weight = .gemm(GemmProbe(x: x, weight: .bf16(BF16Matrix(rows: n, cols: k, repeating: BFloat16(0.25))), order: .outIn))
            weightBytes = 2 * n * k
        } else {
            let n = max(bytes / (4 * k), 1)
            format = "f32"
            weight = .gemm(GemmProbe(x: x, weight: .f32(Matrix(rows: k, cols: n, repeating: 0.25)), order: .inOut))
            weightBytes = 4 * n * k
        }
    }

    /// Output features of one product.
    public var outFeatures: Int {
        switch weight { case .gemm(let g): g.n; case .fp8(let w): w.rows }
    }

    /// One row's product into `y` (at least `outFeatures` floats).
    public func run(into y: UnsafeMutablePointer<Float>) {
        switch weight {
        case .gemm(let g): g.run(into: y)
        case .fp8(let w): x.storage.withUnsafeBufferPointer { w.rowProduct($0.baseAddress!, m: 1, into: y) }
        }
    }
}
