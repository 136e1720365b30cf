/* Timing helpers shared by the C benchmarks. */
#ifndef LM_BENCH_CLOCK_H
#define LM_BENCH_CLOCK_H

#include <time.h>

/* CPU time of the calling thread: on a shared machine it leaves out the
 * time the thread spent descheduled, which wall time cannot. */
static inline double cpu_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return (double)ts.tv_sec * 1e9 + (double)ts.tv_nsec;
}

/* qsort comparator for doubles (medians). */
static inline int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

#endif
