/* kf_clock.h - milliseconds on the monotonic clock: every deadline of the
 * shim, the relay and the CLI (never the wall clock, which can jump). */
#ifndef KF_CLOCK_H
#define KF_CLOCK_H

#include <time.h>

static inline long kf_mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1000L + ts.tv_nsec / 1000000L;
}

#endif
