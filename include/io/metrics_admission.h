/* The admission decisions in the Prometheus metrics (metrics.h renders
 * them): by decision and Spark role, and the time each took. Apart from
 * metrics.h so that the HTTP layer, which counts its errors there, knows
 * nothing of Spark.
 *
 * Process-wide (one server per process). */
#pragma once
#include <stdint.h>

#include "metrics.h"
#include "mutate.h"

/* One admission decision and the time it took. */
void metrics_admission(enum decision d, enum pod_role role, uint64_t micros);
