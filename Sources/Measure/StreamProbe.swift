import MLA
import Planner
import TensorCore
import TensorParallel

/// A decode step's weight streaming, for the rate probe: one token's row through the product a
/// decode step's projections run, on weights held as the run holds them (f32 `[in, out]`
/// through OpenBLAS; bf16 `[out, in]` and fp8 block-scaled `[out, in]` through the row kernels,
/// which read the stored bytes). Weight bytes over seconds is the rate a memory-bound stage
/// streams at: unlike memcpy's, it counts bytes read only, as the model does.
///
/// With a model, the weights are the layer's own: every projection a decode step streams through
/// the row product (all but kv_b_proj, which `AbsorbedProbe` streams) at its local shape on this
/// rank, one after another, as the step reads them. Short rows (o_proj at a large tp, a small
/// model's projections) stream slower than long ones, so one long weight overstates the rate a
/// small model's step gets. Without one, a single 64 MiB weight of 4,096 inputs.
public struct StreamProbe {
    /// How the weights are held: `f32`, `bf16` or `fp8` (fp8: those the run holds in fp8).
    public let format: String
    /// Bytes of the weights (values, and an fp8 weight's scales).
    public let weightBytes: Int
    /// `[out, in]` of each weight, in the order streamed.
    public let shapes: [[Int]]
    private let weights: [Held]

    private enum Held {
        case gemm(GemmProbe)
        case fp8(FP8BlockMatrix, x: Matrix)    // x [1, in]
    }

    /// Input features of the single weight; its output rows fill `bytes`.
    public static let inFeatures = 4096

    /// One weight of `bytes` and `inFeatures` inputs.
    public init(storage: any WeightStorage.Type, bytes: Int = 64 << 20) {
        let k = StreamProbe.inFeatures, perRow = storage.quantization == .fp8 ? k : k * storage.activations.bytesPerElement
        let n = storage.quantization == .fp8 ? max(bytes / k / 128, 1) * 128 : max(bytes / perRow, 1)
        self.init(storage: storage, weights: [([n, k], fp8: true)])
    }

    /// The decode's own weights of `config` on one of `tp` ranks (`ShardingPlan`'s local shapes
    /// under `gate`), kv_b_proj left to the absorbed probe.
    public init(storage: any WeightStorage.Type, config: MLAConfig, tp: Int, gate: GateLayout) {
        let plan = ShardingPlan(config: config, tp: tp, gate: gate, precision: storage.activations, quantization: storage.quantization)
        let kvB = WeightNames(layer: 0).kvBProj + "."
        let streamed = plan.weights.filter { $0.localShape.count == 2 && !$0.name.hasPrefix(kvB) && $0.localShape.allSatisfy { $0 > 0 } }
        self.init(storage: storage, weights: streamed.map { ($0.localShape, fp8: ShardingPlan.heldInFP8($0.name, config: config)) })
    }

    /// Each weight `[out, in]`, and whether an fp8 run holds it in fp8.
    private init(storage: any WeightStorage.Type, weights: [(shape: [Int], fp8: Bool)]) {
        shapes = weights.map(\.shape)
        let quantized = storage.quantization == .fp8
        format = quantized ? "fp8" : storage.activations == .bf16 ? "bf16" : "f32"
        var held: [Held] = [], bytes = 0
        for (shape, fp8) in weights {
            let (n, k) = (shape[0], shape[1]), xk = Matrix(rows: 1, cols: k, repeating: 0.5)
            if quantized && fp8 {
                let scaleCols = (k + 127) / 128, blocks = (n + 127) / 128 * scaleCols
                let w = FP8BlockMatrix(rows: n, cols: k, blockSize: 128, values: [UInt8](repeating: 0x38, count: n * k),  // e4m3 1.0
                                       scales: [Float](repeating: 1.0 / 64, count: blocks), scaleCols: scaleCols, rowOffset: 0, columnOffset: 0)
                held.append(.fp8(w, x: xk))
                bytes += w.bytes
            } else if storage.activations == .bf16 {
                held.append(.gemm(GemmProbe(x: xk, weight: .bf16(BF16Matrix(rows: n, cols: k, repeating: BFloat16(0.25))), order: .outIn)))
                bytes += 2 * n * k
            } else {
                held.append(.gemm(GemmProbe(x: xk, weight: .f32(Matrix(rows: k, cols: n, repeating: 0.25)), order: .inOut)))
                bytes += 4 * n * k
            }
        }
        (self.weights, weightBytes) = (held, bytes)
    }

    /// Output features of the widest product.
    public var outFeatures: Int { shapes.map { $0[0] }.max() ?? 0 }

    /// One row through every weight in turn, each product into `y` (at least `outFeatures` floats).
    public func run(into y: UnsafeMutablePointer<Float>) {
        for weight in weights {
            switch weight {
            case .gemm(let g): g.run(into: y)
            case .fp8(let w, let x): x.storage.withUnsafeBufferPointer { w.rowProduct($0.baseAddress!, m: 1, into: y) }
            }
        }
    }
}
