# Environment for mpirun on one machine (sourced by the other scripts). mpirun refuses root
# unless told; shared memory transport; OpenBLAS threads pinned (mpirun's binding changes them).
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
export OMPI_MCA_btl=self,vader OMPI_MCA_btl_vader_single_copy_mechanism=none
export OPENBLAS_NUM_THREADS=1
