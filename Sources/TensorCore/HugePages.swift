#if canImport(Glibc)
import Glibc
#endif
import CKernels

/// Transparent huge pages for weight storage.
///
/// A decode step streams every local weight once; with 4 KiB pages that is one TLB miss per
/// 64 cache lines. Advising a fresh allocation with `MADV_HUGEPAGE` before it is first
/// touched lets Linux back it with 2 MiB pages where the system's THP mode is `madvise` or
/// `always` (with `never` the advice is ignored, and nothing else changes).
public enum HugePages {
    /// Allocations smaller than this are left alone (a huge page is 2 MiB; one must fit inside).
    public static let threshold = 4 << 20

    /// Advises the whole pages inside `buffer`. Call it before the memory is first written.
    public static func advise(_ buffer: UnsafeMutableBufferPointer<Float>) {
        advise(UnsafeMutableRawBufferPointer(buffer))
    }

    /// Advises the whole pages inside `buffer`, whatever it holds (bf16 weights too).
    public static func advise(_ buffer: UnsafeMutableRawBufferPointer) {
        #if os(Linux)
        guard let base = buffer.baseAddress, buffer.count >= threshold else { return }
        let page = 4096
        let start = (Int(bitPattern: base) + page - 1) / page * page
        let end = (Int(bitPattern: base) + buffer.count) / page * page
        guard end > start, let p = UnsafeMutableRawPointer(bitPattern: start) else { return }
        _ = madvise(p, end - start, MADV_HUGEPAGE)     // advice only: failure leaves 4 KiB pages
        #endif
    }
}

/// The C library's heap, as the kernel sees it.
public enum HeapPages {
    /// Hands freed heap pages back to the kernel, so that the resident set reads what is still
    /// allocated rather than what the heap once grew to. Returns whether any were.
    @discardableResult
    public static func returnFreed() -> Bool { mlatp_heap_trim() == 1 }
}
