import CMPI

/// A failed MPI call: the function that failed, its return code, the code's error class,
/// and Open MPI's own text for it (`MPI_Error_string`).
///
/// Every MPI call made by this module goes through `check(_:_:)`, so a failure anywhere is
/// one of these, never a silent return code. (Open MPI's default handler would abort the job
/// instead; `Environment.initialize` installs `MPI_ERRORS_RETURN` so that errors come back here.)
public struct MPIError: Error, Equatable, CustomStringConvertible {
    /// The MPI function that returned the error, e.g. `MPI_Allreduce`.
    public var function: String
    /// The raw return code.
    public var code: Int32
    /// The error class (`MPI_ERR_ROOT`, `MPI_ERR_COUNT`, ...), from `MPI_Error_class`.
    public var errorClass: Int32
    /// The library's own description of `code`.
    public var message: String

    public init(function: String, code: Int32) {
        self.function = function
        self.code = code
        var cls: Int32 = code
        if Environment.isInitialized { _ = MPI_Error_class(code, &cls) }
        self.errorClass = cls
        self.message = MPIError.errorString(code)
    }

    /// Open MPI's text for an error code (Open MPI aborts if asked before `MPI_Init`,
    /// so outside MPI's lifetime this gives only the number).
    public static func errorString(_ code: Int32) -> String {
        guard Environment.isInitialized else { return "MPI error code \(code)" }
        var buffer = [CChar](repeating: 0, count: Int(MPI_MAX_ERROR_STRING) + 1)
        var length: Int32 = 0
        guard MPI_Error_string(code, &buffer, &length) == MPI_SUCCESS else {
            return "unknown MPI error code \(code)"
        }
        let bytes = buffer.prefix(Int(length)).map { UInt8(bitPattern: $0) }
        return String(decoding: bytes, as: UTF8.self)
    }

    public var description: String {
        "\(function) failed: \(message) (code \(code)) — this is an MPI runtime failure; "
            + "check that every rank runs the same command and that mpirun started all ranks"
    }
}

/// The one checked call path: turns a non-success return code into a thrown `MPIError`.
@inline(__always)
func check(_ function: StaticString, _ rc: Int32) throws(MPIError) {
    if rc != MPI_SUCCESS {
        throw MPIError(function: "\(function)", code: rc)
    }
}
