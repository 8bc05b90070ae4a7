import Launch
import MLA
import Planner
import SafeTensors
import SwiftMPI
import TensorCore

/// MPI start-up for a command: initializes, records the world for the failure policy.
enum Runtime {
    static func start() throws -> Communicator {
        BLAS.defaultToOneThreadPerRank()
        let world = try Environment.initialize()
        Failure.world = world
        TerminationNotice.install(launcher: Failure.underLauncher)     // after MPI_Init, which may install its own
        return world
    }

    /// The size budget of this job: the ranks that share this host, against what it has. Collective.
    static func budget(_ world: Communicator) throws -> SizeBudget { SizeBudget(ranksOnHost: try world.ranksOnThisHost()) }

    /// Child jobs of this binary under the launch policy.
    static var launcher: MPILauncher { MPILauncher(executable: MPILauncher.currentExecutable) }
}
