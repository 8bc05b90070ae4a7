import CMPI

/// Where the ranks of a communicator run, as MPI sees it: each rank's host name and which
/// ranks share a node (can map each other's memory).
///
/// The node is what `MPI_Comm_split_type(MPI_COMM_TYPE_SHARED)` groups, not the host name:
/// Open MPI 4.1 counts ranks as local when one daemon (one hostfile entry) started them, so
/// two hosts that happen to report the same name are still two nodes, and the host name is
/// only for people to read.
public struct Placement: Sendable, Equatable, CustomStringConvertible {
    /// Each rank's processor name (`MPI_Get_processor_name`, the host name), by rank.
    public let hosts: [String]
    /// Each rank's node, by rank: 0 for the node of rank 0, then numbered in order of each
    /// node's lowest rank. Ranks with the same number share memory.
    public let nodes: [Int]

    public init(hosts: [String], nodes: [Int]) {
        precondition(hosts.count == nodes.count, "Placement: \(hosts.count) host names for \(nodes.count) ranks")
        self.hosts = hosts
        self.nodes = nodes
    }

    /// Distinct nodes.
    public var nodeCount: Int { Set(nodes).count }

    /// True when the ranks do not all share one node.
    public var spansNodes: Bool { nodeCount > 1 }

    /// `node 0 (host-a): ranks 0, 1; node 1 (host-b): ranks 2, 3`.
    public var description: String {
        (0..<nodeCount).map { node in
            let ranks = nodes.indices.filter { nodes[$0] == node }
            let names = Set(ranks.map { hosts[$0] }).sorted().joined(separator: ", ")
            return "node \(node) (\(names)): rank\(ranks.count == 1 ? "" : "s") \(ranks.map(String.init).joined(separator: ", "))"
        }.joined(separator: "; ")
    }

    /// Node numbers from each rank's lowest node-mate rank: the first node seen is 0, and so on.
    public static func nodeNumbers(fromLeaders leaders: [Int]) -> [Int] {
        var number: [Int: Int] = [:]
        return leaders.map { leader in
            if let n = number[leader] { return n }
            number[leader] = number.count
            return number.count - 1
        }
    }
}

extension Communicator {
    /// Each rank's host and node (collective: every rank must call it).
    public func placement() throws(MPIError) -> Placement {
        let leader = try withNodeCommunicator { (node) throws(MPIError) in
            var lowest: [Int64] = [Int64(rank)]
            try node.allReduce(&lowest, .min)
            return lowest[0]
        }
        let leaders = try allGather([leader]).map { Int($0) }
        let width = Int(MPI_MAX_PROCESSOR_NAME)
        let names = try allGather(Self.processorName(width: width)).chunked(width).map { bytes in
            String(decoding: bytes.prefix { $0 != 0 }, as: UTF8.self)
        }
        return Placement(hosts: names, nodes: Placement.nodeNumbers(fromLeaders: leaders))
    }

    /// Calls `body` with the communicator of the ranks that share this rank's node
    /// (`MPI_Comm_split_type` with `MPI_COMM_TYPE_SHARED`; collective), freed afterwards.
    public func withNodeCommunicator<R>(_ body: (Communicator) throws(MPIError) -> R) throws(MPIError) -> R {
        var node: MPI_Comm? = nil
        try check("MPI_Comm_split_type", MPI_Comm_split_type(raw, mlatp_comm_type_shared(), Int32(rank), mlatp_info_null(), &node))
        defer { MPI_Comm_free(&node) }
        return try body(Communicator(rawValue: node!))
    }

    /// This process's processor name, NUL-padded to `width` bytes.
    static func processorName(width: Int) throws(MPIError) -> [UInt8] {
        var buffer = [CChar](repeating: 0, count: width)
        var length: Int32 = 0
        try check("MPI_Get_processor_name", MPI_Get_processor_name(&buffer, &length))
        return buffer.map { UInt8(bitPattern: $0) }
    }
}

extension Array {
    /// Consecutive slices of `size` elements (the last may be shorter).
    func chunked(_ size: Int) -> [ArraySlice<Element>] {
        stride(from: 0, to: count, by: size).map { self[$0 ..< Swift.min($0 + size, count)] }
    }
}
