import SwiftMPI

/// A rank's communicators under a `ParallelLayout`: its data-parallel group's TP communicator
/// (the world when dp = 1) and its DCP group's (nil when dcp = 1), made with `MPI_Comm_split`.
public struct LayoutGroups {
    public let layout: ParallelLayout
    public let world: Communicator
    public let position: ParallelLayout.Position
    public let tp: Communicator
    public let dcp: Communicator?

    public init(_ layout: ParallelLayout, world: Communicator) throws {
        self.layout = layout
        self.world = world
        position = layout.position(of: world.rank)
        let g = position.dpGroup, t = layout.tp, c = layout.dcp
        tp = layout.dp == 1 ? world
            : try world.split(color: g, key: world.rank, name: "tp group \(g) (ranks \(g * t)–\(g * t + t - 1))")
        let d = position.dcpGroup, first = g * t + d * c
        dcp = c == 1 ? nil
            : try tp.split(color: d, key: position.tpRank, name: "dcp group \(g).\(d) (ranks \(first)–\(first + c - 1))")
    }
}
