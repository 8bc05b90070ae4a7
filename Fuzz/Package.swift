// swift-tools-version:6.0
// libFuzzer harnesses for the two file parsers of mla-tp: the safetensors header
// (SafeTensors) and config.json (MLA). Built and run by launch/fuzz; see README.md.
import PackageDescription

// `-parse-as-library`: the harnesses have no top-level code. SwiftPM links every executable
// with `main` redirected to `<module>_main` (so tests can link executables), which hides
// libFuzzer's own main(); each harness therefore defines `<module>_main` itself and hands
// control to libFuzzer through LLVMFuzzerRunDriver (declared by CLibFuzzer).
let harnessFlags: [SwiftSetting] = [.unsafeFlags(["-parse-as-library"])]

let package = Package(
    name: "mla-tp-fuzz",
    dependencies: [
        .package(name: "mla-tp", path: ".."),
    ],
    targets: [
        .systemLibrary(name: "CLibFuzzer"),
        .executableTarget(
            name: "fuzz-safetensors",
            dependencies: ["CLibFuzzer", .product(name: "SafeTensors", package: "mla-tp")],
            swiftSettings: harnessFlags),
        .executableTarget(
            name: "fuzz-config",
            dependencies: ["CLibFuzzer", .product(name: "MLA", package: "mla-tp"), .product(name: "Planner", package: "mla-tp")],
            swiftSettings: harnessFlags),
    ],
    swiftLanguageModes: [.v6]
)
