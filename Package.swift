// swift-tools-version:6.0
// mla-tp: DeepSeek-style MLA attention with a gated output under tensor parallelism.
// Layers, bottom to top (dependencies point one way):
//   CMPI, CBLAS, CDNNL (C system modules), CKernels (C) → SwiftMPI, TensorCore → TensorParallel → MLA
//   → Measure (timing, probes, bench engine, the TP check) → Report (run/plan/bench/sweep
//   documents, their text and figures; no MPI) → Jobs (running: run's work on every rank, the
//   sweep's child jobs) → mla-tp (CLI: commands and printing only)
//   SafeTensors (file format, Foundation only) → MLA; Plot (SVG) → Report; Launch (mpirun policy,
//   child processes; Foundation only) → Measure, Jobs, tests; BuildInfo (the tree id) → mla-tp
// Planner (the layer's cost model: sharding plan, FLOP model, layout plans, projection, size
//   budget) sits on MLA: MLA → Planner → Measure, Report, Jobs, mla-tp. MLA's runtime (forward,
//   serving, cache) never imports Planner; what both need stays below it (the kernels' closed-form
//   counts, `AttentionCounts`; the cache's DCP share, `TokenShare`), and commands ask the size
//   budget before allocating. ExitClass (no dependencies): each error's exit class, below all.
import PackageDescription

let package = Package(
    name: "mla-tp",
    products: [
        .executable(name: "mla-tp", targets: ["mla-tp"]),
        // For tools built outside this package (the fuzzers under Fuzz/).
        .library(name: "SafeTensors", targets: ["SafeTensors"]),
        .library(name: "MLA", targets: ["MLA"]),
        .library(name: "Planner", targets: ["Planner"]),
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

        // The failure classes (exit codes) and the protocol each error adopts to state its class.
        // No dependencies, so that every module can depend on it.
        .target(name: "ExitClass"),
        // Typed MPI wrapper in the manner of swift-system.
        .target(name: "SwiftMPI", dependencies: ["CMPI", "ExitClass"]),
        // Row-major f32 and bf16 matrices, the GEMM entry point (OpenBLAS, oneDNN, bf16 kernels),
        // elementwise kernels, the clock. No MPI.
        .target(name: "TensorCore", dependencies: ["CBLAS", "CDNNL", "CKernels", "ExitClass"]),
        // safetensors reader/writer, the HF checkpoint layout, the atomic file writer. Foundation only.
        .target(name: "SafeTensors", dependencies: ["ExitClass"]),
        // Replicated / column / row parallel linear layers, shard math, seeded init, collectives.
        .target(name: "TensorParallel", dependencies: ["SwiftMPI", "TensorCore", "ExitClass"]),
        // MLA attention with the gate: config, RoPE/YaRN, forward, weight loading, the kernels' counts.
        .target(name: "MLA", dependencies: ["TensorParallel", "TensorCore", "SafeTensors", "ExitClass"]),
        // The layer's cost model: sharding plan, FLOP model, layout plans, projection, size budget.
        // Reads MLA; MLA's runtime never reads it (Sources/Planner/Planner.docc).
        .target(name: "Planner", dependencies: ["MLA", "TensorParallel", "TensorCore", "ExitClass"]),
        // How mpirun jobs and child processes are started: one policy. Foundation only.
        .target(name: "Launch"),
        // Measuring: samples, probes, the bench engine, the sweep's step timer, rates, the TP check.
        .target(name: "Measure", dependencies: ["MLA", "Planner", "TensorParallel", "TensorCore", "SwiftMPI", "Launch", "SafeTensors", "ExitClass"]),
        // Reports: run, plan, bench and sweep documents with their text and figures. No MPI.
        .target(name: "Report", dependencies: ["Measure", "MLA", "Planner", "TensorParallel", "TensorCore", "SafeTensors", "Plot", "ExitClass"]),
        // Running: run's work on every rank, its output file, the sweep's child jobs.
        .target(name: "Jobs", dependencies: ["Report", "Measure", "MLA", "Planner", "TensorParallel", "TensorCore", "SwiftMPI",
                                             "SafeTensors", "Launch", "ExitClass"]),
        // A small SVG writer for figures. No dependencies.
        .target(name: "Plot"),
        // The tree id of the sources a binary was built from (`mla-tp --version`).
        .plugin(name: "TreeID", capability: .buildTool()),
        .target(name: "BuildInfo", plugins: ["TreeID"]),
        // The command line: parse, call a library, print.
        .executableTarget(
            name: "mla-tp",
            dependencies: [
                "Jobs", "Report", "Measure", "MLA", "Planner", "TensorParallel", "TensorCore", "SwiftMPI", "SafeTensors", "Launch",
                "BuildInfo", "ExitClass",
                "CMPI",     // diagnose compares MPI error classes (MPI_ERR_ROOT, MPI_ERR_COUNT)
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ]),

        // Measures TensorCore's GEMM paths (GFLOP/s, decode weight bandwidth) and reports which
        // kernel serves bf16 products under a oneDNN ISA cap.
        .executableTarget(name: "kernel-bench", dependencies: ["TensorCore"]),

        // Shared test helpers: approximate equality, spawning mpirun through the launcher.
        .target(name: "TestSupport", dependencies: ["Launch"], path: "Tests/TestSupport"),
        .testTarget(name: "TensorCoreTests", dependencies: ["TensorCore", "TestSupport"]),
        .testTarget(name: "SwiftMPITests", dependencies: ["SwiftMPI", "CMPI", "TestSupport"]),
        .testTarget(name: "TensorParallelTests", dependencies: ["TensorParallel", "TestSupport", "ExitClass"]),
        .testTarget(name: "SafeTensorsTests", dependencies: ["SafeTensors"]),
        .testTarget(name: "MLATests", dependencies: ["MLA", "SafeTensors", "TestSupport", "ExitClass"]),
        .testTarget(name: "PlannerTests", dependencies: ["Planner", "MLA", "SafeTensors"]),
        .testTarget(name: "MeasureTests", dependencies: ["Measure", "Report", "MLA", "TestSupport"]),
        .testTarget(name: "ReportTests", dependencies: ["Report", "Planner", "MLA", "TensorCore"]),
        .testTarget(name: "JobsTests", dependencies: ["Jobs", "Measure", "MLA", "Planner", "TensorCore"]),
        .testTarget(name: "PlotTests", dependencies: ["Plot"]),
        .testTarget(name: "LaunchTests", dependencies: ["Launch", "TestSupport"]),
        .testTarget(name: "CLITests", dependencies: ["TestSupport", "SafeTensors", "Report", "Measure", "MLA", "Planner", "TensorCore"]),
        .testTarget(name: "ExitClassTests", dependencies: ["ExitClass", "TensorCore", "SwiftMPI", "SafeTensors", "TensorParallel",
                                                           "MLA", "Planner", "Measure", "Report", "Launch"]),
    ],
    swiftLanguageModes: [.v6]
)
