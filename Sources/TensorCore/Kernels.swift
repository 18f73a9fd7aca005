import CPUKernels

/// The kernel context TensorCore's ops and the layers above them run with: threads, GEMM blocking, scratch
/// memory. Interim, until the tape carries an explicit engine: the command-line tool and the benchmarks set it
/// (tools/check-globals.sh lists it among the globals that remain).
package enum DefaultKernels {
    nonisolated(unsafe) package static var context = KernelContext()
}

/// The context ops pass to kernels.
package var kernels: KernelContext { DefaultKernels.context }
