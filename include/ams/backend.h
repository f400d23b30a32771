/* backend.h - choosing a kernel backend at run time: "ref" (the plain-C oracle) or "cpu"
 * (the fast multi-threaded CPU backend: oneDNN convolutions, parallel element-wise ops).
 *
 * Usage:
 *     const ams_backend *be = ams_backend_by_name("cpu", 0, &err);  // 0 threads = all cores
 *     ams_graph_forward(g, be, &err);
 *     ams_backend_free(be);                                          // no-op for "ref"
 *
 * A created backend keeps caches (primitives, reordered weights, scratch) keyed by the
 * kernel descriptors it has seen: the first call for a shape sets them up, later calls
 * allocate nothing of ours. One backend serves one executing thread at a time.
 */
#ifndef AMS_BACKEND_H
#define AMS_BACKEND_H

#include "ams/kernels.h"

/* Names accepted by ams_backend_by_name, for help texts. */
#define AMS_BACKEND_NAMES "ref|cpu"

/* The fast CPU backend with THREADS worker threads (0 = every online core). Unaccelerated
 * entries are the reference kernels. Free it with ams_backend_free. */
ams_status ams_backend_cpu_create(int threads, const ams_backend **out, ams_err *err);

/* "ref" -> the static reference table; "cpu" -> a new CPU backend (threads as above);
 * NULL when the name is unknown (err says which names are known). */
const ams_backend *ams_backend_by_name(const char *name, int threads, ams_err *err);

/* Frees a backend from ams_backend_by_name / ams_backend_cpu_create; NULL and the
 * reference table are ignored. */
void ams_backend_free(const ams_backend *be);

/* The worker-thread count a backend uses (1 for ref). */
int ams_backend_threads(const ams_backend *be);

#endif
