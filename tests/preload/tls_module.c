/* A library with a thread-local block too large for the loader's static TLS
 * reserve, so each thread's copy is allocated with malloc at its first access. */
static __thread char block[16 * 1024];

char *tls_module_block(void) { return block; }
