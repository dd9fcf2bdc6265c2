int grok_kernels_version(void) { return 1; }
