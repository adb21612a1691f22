/*
 * Private helpers of libvfile beside the backend-support tier (vfile/kv_util.h,
 * which this includes): what only the library and the project's own programs
 * use.
 */
#ifndef VFILE_COMMON_INT_H
#define VFILE_COMMON_INT_H

#include <curl/curl.h>

#include "vfile/kv_util.h"

/* ---- process ---- */
/* Daemon-wide malloc tuning, once at start (vfiled, and the benchmark's
 * manager): at most 2 glibc arenas (M_ARENA_MAX) unless MALLOC_ARENA_MAX is
 * set. A manager runs ~40 threads that mostly wait on the store; with an arena
 * each, memory one thread frees stays reserved in its arena. */
void vf_malloc_tune(void);

#endif /* VFILE_COMMON_INT_H */
