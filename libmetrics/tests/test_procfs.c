/* lm__process_read against independent sources: getrlimit, descriptors we
 * open ourselves, a thread we start, the process CPU clock and wall time. */
#include "internal.h"
#include "lm_test.h"

#include <fcntl.h>
#include <pthread.h>
#include <stdlib.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

static pthread_barrier_t barrier;

static void *parked(void *arg)
{
    (void)arg;
    pthread_barrier_wait(&barrier); /* started */
    pthread_barrier_wait(&barrier); /* main has read the stats */
    return NULL;
}

static double now_real(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

static double cpu_clock(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

int main(void)
{
    lm_process_stats st;
    lm__process_read(&st);
    CHECK(st.ok);
    CHECK(st.resident_bytes > 0);
    CHECK(st.virtual_bytes >= st.resident_bytes);
    CHECK(st.open_fds >= 3); /* stdin, stdout, stderr */
    CHECK(st.threads == 1);
    double now = now_real();
    CHECK(st.start_time_seconds <= now + 1);
    CHECK(st.start_time_seconds > now - 86400);
    struct rlimit rl;
    CHECK(getrlimit(RLIMIT_NOFILE, &rl) == 0);
    CHECK(st.max_fds == (double)rl.rlim_cur);

    /* Exactly the descriptors we open are counted (opendir's own is not). */
    int fds[10];
    for (int i = 0; i < 10; i++)
        fds[i] = open("/dev/null", O_RDONLY | O_CLOEXEC);
    lm_process_stats st2;
    lm__process_read(&st2);
    CHECK(st2.ok);
    CHECK(st2.open_fds == st.open_fds + 10);
    for (int i = 0; i < 10; i++)
        close(fds[i]);
    lm__process_read(&st2);
    CHECK(st2.open_fds == st.open_fds);

    /* A second thread shows up. */
    pthread_t t;
    pthread_barrier_init(&barrier, NULL, 2);
    CHECK(pthread_create(&t, NULL, parked, NULL) == 0);
    pthread_barrier_wait(&barrier);
    lm__process_read(&st2);
    CHECK(st2.threads == 2);
    pthread_barrier_wait(&barrier);
    pthread_join(t, NULL);
    pthread_barrier_destroy(&barrier);

    /* CPU seconds track the process CPU clock to within scheduler ticks
     * (valgrind slows the loop but not the agreement). */
    double t0 = cpu_clock();
    volatile uint64_t x = 1;
    unsigned long spins = getenv("LM_TEST_SMALL") ? 20000000ul : 300000000ul;
    for (unsigned long i = 0; i < spins && cpu_clock() - t0 < 0.3; i++)
        x = x * 6364136223846793005ull + 1;
    lm__process_read(&st2);
    double clk = cpu_clock();
    double tick = 1.0 / (double)sysconf(_SC_CLK_TCK);
    CHECK(st2.cpu_seconds >= st.cpu_seconds);
    CHECK(st2.cpu_seconds <= clk + tick);
    CHECK(st2.cpu_seconds >= clk - 3 * tick - 0.02);
    TEST_MAIN_END();
}
