// placeholder
int grok_kernels_version(void);
