// swift-tools-version:6.0
// mla-tp: DeepSeek-style MLA attention with a gated output under tensor parallelism.
// Layers, bottom to top (dependencies point one way):
//   CMPI, CBLAS, CDNNL (C system modules), CKernels (C) → SwiftMPI, TensorCore → TensorParallel → MLA → mla-tp (CLI)
//   SafeTensors (file format, Foundation only) → MLA; Plot (SVG figures) → mla-tp
import PackageDescription

let package = Package(
    name: "mla-tp",
    products: [
        .executable(name: "mla-tp", targets: ["mla-tp"]),
        // For tools built outside this package (the fuzzers under Fuzz/).
        .library(name: "SafeTensors", targets: ["SafeTensors"]),
        .library(name: "MLA", targets: ["MLA"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.5.0"),
    ],
    targets: [
        // C shims: headers only, no logic.
        .systemLibrary(
            name: "CMPI", pkgConfig: "ompi-c",
            providers: [.apt(["libopenmpi-dev", "openmpi-bin"])]),
        .systemLibrary(
            name: "CBLAS", pkgConfig: "openblas",
            providers: [.apt(["libopenblas-dev"])]),
        // oneDNN 2.6's C API; Debian's package has no pkg-config file, so the module map links -ldnnl.
        .systemLibrary(name: "CDNNL", providers: [.apt(["libdnnl-dev"])]),
        // bf16 conversions and the bf16 decode kernels, in C for per-function instruction sets.
        .target(name: "CKernels"),

        // Typed MPI wrapper in the manner of swift-system.
        .target(name: "SwiftMPI", dependencies: ["CMPI"]),
        // Row-major f32 and bf16 matrices, the GEMM entry point (OpenBLAS, oneDNN, bf16 kernels),
        // elementwise kernels. No MPI.
        .target(name: "TensorCore", dependencies: ["CBLAS", "CDNNL", "CKernels"]),
        // safetensors reader/writer and the HF checkpoint layout. Foundation only.
        .target(name: "SafeTensors"),
        // Replicated / column / row parallel linear layers, shard math, seeded init.
        .target(name: "TensorParallel", dependencies: ["SwiftMPI", "TensorCore"]),
        // MLA attention with the gate: config, RoPE/YaRN, forward, weight loading.
        .target(name: "MLA", dependencies: ["TensorParallel", "TensorCore", "SwiftMPI", "SafeTensors"]),
        // A small SVG writer for figures. No dependencies.
        .target(name: "Plot"),
        // The command line.
        .executableTarget(
            name: "mla-tp",
            dependencies: [
                "MLA", "TensorParallel", "TensorCore", "SwiftMPI", "SafeTensors", "Plot",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ]),

        // Measures TensorCore's GEMM paths (GFLOP/s, decode weight bandwidth) and reports which
        // kernel serves bf16 products under a oneDNN ISA cap.
        .executableTarget(name: "kernel-bench", dependencies: ["TensorCore"]),

        // Shared test helpers: approximate equality, spawning mpirun.
        .target(name: "TestSupport", path: "Tests/TestSupport"),
        .testTarget(name: "TensorCoreTests", dependencies: ["TensorCore", "TestSupport"]),
        .testTarget(name: "SwiftMPITests", dependencies: ["SwiftMPI", "CMPI"]),
        .testTarget(name: "TensorParallelTests", dependencies: ["TensorParallel", "TestSupport"]),
        .testTarget(name: "SafeTensorsTests", dependencies: ["SafeTensors"]),
        .testTarget(name: "MLATests", dependencies: ["MLA", "SafeTensors", "TestSupport"]),
        .testTarget(name: "PlotTests", dependencies: ["Plot"]),
        .testTarget(name: "CLITests", dependencies: ["TestSupport", "SafeTensors"]),
    ],
    swiftLanguageModes: [.v6]
)
