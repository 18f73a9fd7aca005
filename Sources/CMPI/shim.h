// Open MPI for Swift: MPI_COMM_WORLD, MPI_FLOAT, MPI_SUM and friends are macros over globals that Swift cannot
// import, so these one-line functions return them. No other C code.
#include <mpi.h>

static inline MPI_Comm ijepa_mpi_comm_world(void) { return MPI_COMM_WORLD; }
static inline MPI_Datatype ijepa_mpi_float(void) { return MPI_FLOAT; }
static inline MPI_Datatype ijepa_mpi_byte(void) { return MPI_BYTE; }
static inline MPI_Datatype ijepa_mpi_int(void) { return MPI_INT; }
static inline MPI_Datatype ijepa_mpi_int64(void) { return MPI_INT64_T; }
static inline MPI_Op ijepa_mpi_sum(void) { return MPI_SUM; }
static inline MPI_Op ijepa_mpi_max(void) { return MPI_MAX; }
static inline MPI_Status *ijepa_mpi_status_ignore(void) { return MPI_STATUS_IGNORE; }
static inline int ijepa_mpi_thread_funneled(void) { return MPI_THREAD_FUNNELED; }
