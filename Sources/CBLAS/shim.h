// OpenBLAS's CBLAS interface. Debian's cblas.h also declares bf16 routines (cblas_sbgemm…) that
// its libopenblas does not export: do not call them; bf16 goes through our own kernels.
#include <cblas.h>
// Thread control (OpenBLAS extension). mpirun's core binding changes the default: always set it.
void openblas_set_num_threads(int num_threads);
