/// A sharded result that differs from the unsharded forward (a numeric failure, exit 5).
public struct CheckFailure: Error, CustomStringConvertible {
    public var message: String
    public var description: String { message }
    public init(message: String) { self.message = message }
}
