#ifndef ZG_CLOCK_H
#define ZG_CLOCK_H
#include <stdint.h>
#include <time.h>

/* Milliseconds on the monotonic clock (for intervals and timeouts, never for dates). */
int64_t zg_clock_ms(void);
/* The absolute CLOCK_REALTIME time ms milliseconds from now (ms >= 0), as
 * pthread_cond_timedwait takes it. */
struct timespec zg_clock_deadline(int64_t ms);

#endif
