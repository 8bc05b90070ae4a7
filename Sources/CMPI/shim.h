// CMPI: the C side of the MPI layer. No stable API: only SwiftMPI uses it.
// Open MPI defines MPI_COMM_WORLD, MPI_FLOAT, MPI_SUM, MPI_IN_PLACE ... as casts of
// addresses of global structs, which Swift cannot import; these accessors return them.
#ifndef MLATP_CMPI_SHIM_H
#define MLATP_CMPI_SHIM_H
#include <mpi.h>
#include <stdint.h>

static inline MPI_Comm mlatp_comm_world(void) { return MPI_COMM_WORLD; }
static inline MPI_Comm mlatp_comm_null(void) { return MPI_COMM_NULL; }
static inline MPI_Datatype mlatp_float(void) { return MPI_FLOAT; }
static inline MPI_Datatype mlatp_double(void) { return MPI_DOUBLE; }
static inline MPI_Datatype mlatp_int64(void) { return MPI_INT64_T; }
static inline MPI_Datatype mlatp_byte(void) { return MPI_BYTE; }
static inline MPI_Datatype mlatp_uint16(void) { return MPI_UINT16_T; }
static inline MPI_Op mlatp_op_sum(void) { return MPI_SUM; }
static inline MPI_Op mlatp_op_max(void) { return MPI_MAX; }
static inline MPI_Op mlatp_op_min(void) { return MPI_MIN; }
static inline void *mlatp_in_place(void) { return MPI_IN_PLACE; }
static inline MPI_Errhandler mlatp_errors_return(void) { return MPI_ERRORS_RETURN; }
static inline MPI_Status *mlatp_status_ignore(void) { return MPI_STATUS_IGNORE; }
static inline MPI_Info mlatp_info_null(void) { return MPI_INFO_NULL; }
static inline int mlatp_comm_type_shared(void) { return MPI_COMM_TYPE_SHARED; }

// C11 acquire/release on a word of an MPI shared-memory window (SharedMemoryReducer's flags).
static inline uint64_t mlatp_load_acquire(const uint64_t *p) { return __atomic_load_n(p, __ATOMIC_ACQUIRE); }
static inline void mlatp_store_release(uint64_t *p, uint64_t v) { __atomic_store_n(p, v, __ATOMIC_RELEASE); }
#endif
