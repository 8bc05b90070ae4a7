import Synchronization
#if canImport(Glibc)
import Glibc
#endif

/// Whether this process has been told to end, so that no output is moved into place after it.
///
/// SIGINT and SIGTERM are recorded, then end the process as their default action does. Under
/// an MPI launcher a SIGCONT sent by another process is recorded too: Open MPI's mpirun, told to
/// stop (SIGINT, SIGTERM or its `--timeout`), first sends every rank SIGCONT, then SIGTERM about a
/// second later, then SIGKILL (measured with Open MPI 4.1.4), and a rank that finishes its output
/// in that second must not replace the old one. `AtomicFile` checks the notice right before it
/// links a finished file into place, with SIGINT and SIGTERM blocked from there to the end of
/// the move.
public enum TerminationNotice {
    /// The signal recorded (0: none).
    private static let signal = Atomic<Int32>(0)
    /// Whether a SIGCONT from another process counts (set under an MPI launcher).
    private static let continueCounts = Atomic<Bool>(false)

    /// Installs the handlers; `launcher`: this process is a rank started by mpirun (or orted).
    /// Call again after `MPI_Init` in case the MPI library replaced a handler.
    public static func install(launcher: Bool) {
        continueCounts.store(launcher, ordering: .relaxed)
        var action = sigaction()
        action.__sigaction_handler.sa_sigaction = { number, info, _ in
            if number == SIGCONT {
                // SI_USER: sent with kill(2), i.e. by the launcher, not by the kernel's job control.
                guard TerminationNotice.continueCounts.load(ordering: .relaxed), let code = info?.pointee.si_code, code == Int32(SI_USER) else { return }
                TerminationNotice.signal.store(number, ordering: .relaxed)
                return
            }
            TerminationNotice.signal.store(number, ordering: .relaxed)
            // SA_RESETHAND restored the default action: deliver the signal again once this returns.
            _ = raise(number)
        }
        sigemptyset(&action.sa_mask)
        action.sa_flags = SA_SIGINFO | SA_RESTART
        _ = sigaction(SIGCONT, &action, nil)
        action.sa_flags = SA_SIGINFO | SA_RESTART | Int32(bitPattern: UInt32(SA_RESETHAND))
        _ = sigaction(SIGINT, &action, nil)
        _ = sigaction(SIGTERM, &action, nil)
    }

    /// The signal that told this process to end, or nil.
    public static var received: Int32? {
        let s = signal.load(ordering: .relaxed)
        return s == 0 ? nil : s
    }

    /// Runs `body` with SIGINT and SIGTERM held back (delivered when it returns), so that a
    /// group of renames is not cut in two by them; throws `.interrupted` first when a notice has
    /// already arrived.
    static func withTerminationBlocked<T>(path: String, _ body: () throws -> T) throws -> T {
        var block = sigset_t(), previous = sigset_t()
        sigemptyset(&block)
        sigaddset(&block, SIGINT)
        sigaddset(&block, SIGTERM)
        pthread_sigmask(SIG_BLOCK, &block, &previous)
        defer { pthread_sigmask(SIG_SETMASK, &previous, nil) }
        if let s = received { throw SafeTensorsWriteError.interrupted(path: path, signal: s) }
        return try body()
    }
}
