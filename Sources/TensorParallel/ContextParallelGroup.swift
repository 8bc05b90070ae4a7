/// A rank's decode-context-parallel group as the attention receives it: the collectives over the
/// group's C ranks and the share of every sequence's cached tokens this rank keeps, taken from its
/// `ParallelLayout.Position.dcpIndex`. Built where the layout's communicators are built and passed
/// per call beside the TP group's collectives, as the TP group is.
public struct ContextParallelGroup {
    public let collectives: Collectives
    public let share: TokenShare

    /// `collectives` must span `share.count` ranks, with this rank at `share.index` of them: the
    /// merge's blocks follow the communicator's ranks, the cache's tokens follow the share.
    public init(_ collectives: Collectives, share: TokenShare) {
        precondition(collectives.size == share.count && (collectives.communicator.map { $0.rank == share.index } ?? true),
                     "DCP group \(collectives.name) of \(collectives.size) ranks does not hold token share \(share)")
        self.collectives = collectives
        self.share = share
    }
}
