// The only Swift file that imports OpenMPI. Every call's return code is checked.
import CMPI
import Foundation

/// `MPI_COMM_WORLD` after `MPI_Init`. Errors are returned, not fatal, so each can be reported
/// in one line before the job is aborted.
public final class MPICommunicator: Communicator {
    public let rank: Int
    public let size: Int

    /// Initialises MPI (once per process) and returns the world communicator.
    public init() throws {
        var provided: Int32 = 0
        try MPICommunicator.check(MPI_Init_thread(nil, nil, cmpi_thread_funneled(), &provided), "MPI_Init_thread")
        try MPICommunicator.check(MPI_Comm_set_errhandler(cmpi_comm_world(), cmpi_errors_return()), "MPI_Comm_set_errhandler")
        var r: Int32 = 0, s: Int32 = 0
        try MPICommunicator.check(MPI_Comm_rank(cmpi_comm_world(), &r), "MPI_Comm_rank")
        try MPICommunicator.check(MPI_Comm_size(cmpi_comm_world(), &s), "MPI_Comm_size")
        rank = Int(r)
        size = Int(s)
    }

    /// True when this process was started by an MPI launcher (mpirun / srun set these).
    public static var isLaunchedByMPI: Bool {
        let env = ProcessInfo.processInfo.environment
        return env["OMPI_COMM_WORLD_SIZE"] != nil || env["PMI_SIZE"] != nil || env["PMIX_RANK"] != nil
    }

    public func finalize() { _ = MPI_Finalize() }

    public func allreduceSum(_ buffer: UnsafeMutablePointer<Float>, count: Int) throws {
        try MPICommunicator.check(MPI_Allreduce(cmpi_in_place(), buffer, Int32(count), cmpi_float(), cmpi_op_sum(), cmpi_comm_world()), "MPI_Allreduce")
    }

    public func broadcast(_ buffer: UnsafeMutableRawPointer, count: Int, root: Int) throws {
        try MPICommunicator.check(MPI_Bcast(buffer, Int32(count), cmpi_byte(), Int32(root), cmpi_comm_world()), "MPI_Bcast")
    }

    public func allgather(_ send: UnsafePointer<Float>, count: Int, into result: UnsafeMutablePointer<Float>) throws {
        try MPICommunicator.check(MPI_Allgather(send, Int32(count), cmpi_float(), result, Int32(count), cmpi_float(), cmpi_comm_world()), "MPI_Allgather")
    }

    public func barrier() throws {
        try MPICommunicator.check(MPI_Barrier(cmpi_comm_world()), "MPI_Barrier")
    }

    public func abort(code: Int32) -> Never {
        _ = MPI_Abort(cmpi_comm_world(), code)
        exit(code)
    }

    private static func check(_ code: Int32, _ operation: String) throws {
        guard code != cmpi_success() else { return }
        var buffer = [CChar](repeating: 0, count: 512)
        var length: Int32 = 0
        _ = MPI_Error_string(code, &buffer, &length)
        throw CommunicationError(operation: operation, message: String(cString: buffer))
    }
}
