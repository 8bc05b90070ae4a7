// libFuzzer harness: SafeTensorsHeader.parse on arbitrary bytes.
//
// The parser promises never to trap; its errors are rendered as the CLI renders them.
// When it accepts an input, the harness also checks what callers rely on: every tensor's
// byte range lies inside the data section, its size is dtype size × element count, ranges
// do not overlap, and the element counts sum without overflow.
import CLibFuzzer
import Foundation
import SafeTensors

/// `FUZZ_VERBOSE=1 fuzz-safetensors FILE…` prints what the parser made of each file (triage).
let verbose = getenv("FUZZ_VERBOSE") != nil

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    let bytes = UnsafeRawBufferPointer(start: data, count: size)
    let header: SafeTensorsHeader
    do {
        header = try SafeTensorsHeader.parse(bytes: bytes, fileName: "fuzz.safetensors")
    } catch {
        let message = String(describing: error)   // rendered as the CLI renders it
        if verbose { print("rejected: \(message)") }
        return 0
    }
    if verbose { print("accepted: \(header.tensors.count) tensors, \(header.metadata.count) metadata keys") }

    precondition(header.dataOffset >= 8 && header.dataOffset <= size, "data section starts outside the file")
    let dataSize = size - header.dataOffset
    var totalElements = 0
    var totalBytes = 0
    for (name, info) in header.tensors {
        precondition(name == info.name, "tensor keyed under another name")
        precondition(name != "__metadata__", "__metadata__ parsed as a tensor")
        let range = info.byteRange
        precondition(range.lowerBound >= 0 && range.upperBound <= dataSize,
                     "\(name): byteRange \(range) outside the data section (0..<\(dataSize))")
        precondition(info.shape.allSatisfy { $0 >= 0 }, "\(name): negative dimension")
        let count = info.elementCount   // documented never to trap for a parsed header
        precondition(count >= 0, "\(name): negative element count")
        let (bytesNeeded, bytesOverflow) = count.multipliedReportingOverflow(by: info.dtype.byteSize)
        precondition(!bytesOverflow && bytesNeeded == info.byteCount,
                     "\(name): \(info.byteCount) bytes for \(count) × \(info.dtype.byteSize)")
        let (elements, elementsOverflow) = totalElements.addingReportingOverflow(count)
        precondition(!elementsOverflow, "sum of element counts overflows")
        totalElements = elements
        totalBytes += info.byteCount   // each ≤ dataSize and disjoint, so cannot overflow
    }
    precondition(totalBytes <= dataSize, "tensors hold \(totalBytes) bytes, data section has \(dataSize)")

    // Non-empty ranges must be pairwise disjoint.
    let ranges = header.tensors.values.map(\.byteRange).filter { !$0.isEmpty }
        .sorted { $0.lowerBound < $1.lowerBound }
    for (a, b) in zip(ranges, ranges.dropFirst()) {
        precondition(a.upperBound <= b.lowerBound, "byte ranges \(a) and \(b) overlap")
    }

    // The Data and [UInt8] overloads must agree with the pointer entry point.
    let again = try? SafeTensorsHeader.parse(bytes: Array(bytes), fileName: "fuzz.safetensors")
    precondition(again == header, "parse(bytes: [UInt8]) disagrees with parse(bytes: UnsafeRawBufferPointer)")
    return 0
}

/// The executable's entry point (SwiftPM links `main` to `<module>_main`): runs libFuzzer.
@_cdecl("fuzz_safetensors_main")
public func fuzzerMain(_ argc: CInt, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>) -> CInt {
    var argc = argc
    var argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>? = argv
    return LLVMFuzzerRunDriver(&argc, &argv) { data, size in fuzz(data!, size) }
}
