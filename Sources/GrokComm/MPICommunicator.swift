// The only Swift file that imports OpenMPI. Every call's return code is checked.
import CMPI
import Foundation

/// An MPI communicator: `MPI_COMM_WORLD` after `MPI_Init`, or a group split from it. Errors are
/// returned, not fatal, so each can be reported in one line before the job is aborted.
public final class MPICommunicator: Communicator {
    public let rank: Int
    public let size: Int
    private let comm: MPI_Comm

    /// Initialises MPI (once per process) and returns the world communicator.
    public convenience init() throws {
        var provided: Int32 = 0
        try MPICommunicator.check(MPI_Init_thread(nil, nil, cmpi_thread_funneled(), &provided), "MPI_Init_thread")
        try MPICommunicator.check(MPI_Comm_set_errhandler(cmpi_comm_world(), cmpi_errors_return()), "MPI_Comm_set_errhandler")
        try self.init(comm: cmpi_comm_world())
    }

    private init(comm: MPI_Comm) throws {
        var r: Int32 = 0, s: Int32 = 0
        try MPICommunicator.check(MPI_Comm_rank(comm, &r), "MPI_Comm_rank")
        try MPICommunicator.check(MPI_Comm_size(comm, &s), "MPI_Comm_size")
        self.comm = comm
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
        try MPICommunicator.check(MPI_Allreduce(cmpi_in_place(), buffer, try MPICommunicator.int32(count), cmpi_float(), cmpi_op_sum(), comm), "MPI_Allreduce")
    }

    public func broadcast(_ buffer: UnsafeMutableRawPointer, count: Int, root: Int) throws {
        try MPICommunicator.check(MPI_Bcast(buffer, try MPICommunicator.int32(count), cmpi_byte(), Int32(root), comm), "MPI_Bcast")
    }

    public func allgather(_ send: UnsafePointer<Float>, count: Int, into result: UnsafeMutablePointer<Float>) throws {
        try MPICommunicator.check(MPI_Allgather(send, try MPICommunicator.int32(count), cmpi_float(), result, try MPICommunicator.int32(count), cmpi_float(), comm), "MPI_Allgather")
    }

    public func barrier() throws {
        try MPICommunicator.check(MPI_Barrier(comm), "MPI_Barrier")
    }

    public func alltoallv(_ send: UnsafePointer<Float>, sendCounts: [Int], sendOffsets: [Int],
                          into receive: UnsafeMutablePointer<Float>, receiveCounts: [Int], receiveOffsets: [Int]) throws {
        let sc = try sendCounts.map(MPICommunicator.int32), so = try sendOffsets.map(MPICommunicator.int32)
        let rc = try receiveCounts.map(MPICommunicator.int32), ro = try receiveOffsets.map(MPICommunicator.int32)
        try MPICommunicator.check(MPI_Alltoallv(send, sc, so, cmpi_float(), receive, rc, ro, cmpi_float(), comm), "MPI_Alltoallv")
    }

    public func alltoall(_ send: [Int32], countPerRank: Int) throws -> [Int32] {
        var received = [Int32](repeating: 0, count: countPerRank * size)
        try MPICommunicator.check(MPI_Alltoall(send, try MPICommunicator.int32(countPerRank), cmpi_int32(), &received, try MPICommunicator.int32(countPerRank),
                                               cmpi_int32(), comm), "MPI_Alltoall")
        return received
    }

    public func send(_ buffer: UnsafeRawPointer, count: Int, to destination: Int, tag: Int) throws {
        try MPICommunicator.check(MPI_Send(buffer, try MPICommunicator.int32(count), cmpi_byte(), Int32(destination), Int32(tag), comm),
                                  "MPI_Send to rank \(destination)")
    }

    public func receive(_ buffer: UnsafeMutableRawPointer, count: Int, from source: Int, tag: Int) throws {
        try MPICommunicator.check(MPI_Recv(buffer, try MPICommunicator.int32(count), cmpi_byte(), Int32(source), Int32(tag), comm,
                                           cmpi_status_ignore()), "MPI_Recv from rank \(source)")
    }

    public func split(color: Int?, key: Int) throws -> Communicator? {
        var group: MPI_Comm? = cmpi_comm_null()
        try MPICommunicator.check(MPI_Comm_split(comm, color.map(Int32.init) ?? cmpi_undefined(), Int32(key), &group), "MPI_Comm_split")
        guard color != nil, let group else { return nil }
        try MPICommunicator.check(MPI_Comm_set_errhandler(group, cmpi_errors_return()), "MPI_Comm_set_errhandler")
        return try MPICommunicator(comm: group)
    }

    public func abort(code: Int32) -> Never {
        _ = MPI_Abort(cmpi_comm_world(), code)   // the whole job, not just this group
        exit(code)
    }

    /// MPI counts are C ints.
    private static func int32(_ value: Int) throws -> Int32 {
        guard let v = Int32(exactly: value) else {
            throw CommunicationError(operation: "MPI", message: "count \(value) exceeds MPI's 32-bit limit")
        }
        return v
    }

    private static func check(_ code: Int32, _ operation: String) throws {
        guard code != cmpi_success() else { return }
        var buffer = [CChar](repeating: 0, count: 512)
        var length: Int32 = 0
        _ = MPI_Error_string(code, &buffer, &length)
        throw CommunicationError(operation: operation, message: String(cString: buffer))
    }
}
