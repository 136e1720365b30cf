/*
 * Process metrics from Linux procfs, the same sources and arithmetic as
 * client_golang's process collector (procfs package), so dashboards built
 * for Go services read ours the same way. Everything is read into stack
 * buffers per call: no static state, safe from any thread.
 */
#include "util.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

/* Reads a small file whole into buf (NUL-terminated); false on error or if
 * it does not fit (the files read here are well under 1 KiB). */
static bool read_small(const char *path, char *buf, size_t cap)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return false;
    size_t n = 0;
    for (;;) {
        ssize_t r = read(fd, buf + n, cap - 1 - n);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0) {
            close(fd);
            return false;
        }
        if (r == 0)
            break;
        n += (size_t)r;
        if (n == cap - 1) {
            close(fd);
            return false;
        }
    }
    close(fd);
    buf[n] = '\0';
    return true;
}

/* /proc/self/stat fields after the command name, which may itself contain
 * spaces and parentheses: parse from the LAST ')'. Field numbers are those
 * of proc(5): 14 utime, 15 stime, 20 num_threads, 22 starttime, 23 vsize. */
static bool parse_stat(const char *buf, unsigned long long *utime, unsigned long long *stime,
                       unsigned long long *threads, unsigned long long *start_ticks,
                       unsigned long long *vsize)
{
    const char *p = strrchr(buf, ')');
    if (!p)
        return false;
    p++;
    unsigned long long f[24] = {0};
    int field = 3; /* the first token after ')' is field 3, state */
    while (*p && field <= 23) {
        while (*p == ' ')
            p++;
        if (!*p)
            break;
        if (field == 3) {
            while (*p && *p != ' ')
                p++;
        } else {
            char *end;
            errno = 0;
            if (*p == '-') { /* signed fields (priority, nice, ...) are not needed */
                strtoll(p, &end, 10);
                f[field] = 0;
            } else {
                f[field] = strtoull(p, &end, 10);
            }
            if (end == p || errno)
                return false;
            p = end;
        }
        field++;
    }
    if (field <= 23)
        return false;
    *utime = f[14];
    *stime = f[15];
    *threads = f[20];
    *start_ticks = f[22];
    *vsize = f[23];
    return true;
}

/* btime (boot time, seconds since the epoch) from /proc/stat. That file
 * grows with the CPU and interrupt count (the intr line alone can be many
 * KiB), so it is scanned in chunks with a line carried across reads. */
static bool read_btime(unsigned long long *btime)
{
    int fd = open("/proc/stat", O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return false;
    char buf[4096];
    char line[64]; /* "btime <digits>" fits; longer lines are skipped */
    size_t ll = 0;
    bool skipping = false, found = false;
    for (;;) {
        ssize_t r = read(fd, buf, sizeof buf);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            break;
        for (ssize_t i = 0; i < r && !found; i++) {
            char c = buf[i];
            if (c != '\n') {
                if (ll < sizeof line - 1)
                    line[ll++] = c;
                else
                    skipping = true;
                continue;
            }
            line[ll] = '\0';
            if (!skipping && strncmp(line, "btime ", 6) == 0) {
                char *end;
                errno = 0;
                *btime = strtoull(line + 6, &end, 10);
                found = end != line + 6 && errno == 0;
            }
            ll = 0;
            skipping = false;
        }
        if (found)
            break;
    }
    close(fd);
    return found;
}

/* Open descriptors, not counting the one opendir itself holds. */
static bool count_fds(double *out)
{
    DIR *d = opendir("/proc/self/fd");
    if (!d)
        return false;
    int own = dirfd(d);
    unsigned long n = 0;
    struct dirent *ent;
    while ((ent = readdir(d)) != NULL) {
        if (ent->d_name[0] == '.')
            continue; /* "." and ".."; descriptor names are digits only */
        if (atoi(ent->d_name) == own)
            continue;
        n++;
    }
    closedir(d);
    *out = (double)n;
    return true;
}

void lm__process_read(lm_process_stats *out)
{
    memset(out, 0, sizeof *out);
    char buf[1024];
    /* Zeroed although every path that reads them sets them first: gcc -O3
     * cannot see that through read_btime's early exits and -Werror stops. */
    unsigned long long utime = 0, stime = 0, threads = 0, start_ticks = 0, vsize = 0, btime = 0;
    if (access("/proc/self", F_OK) != 0 && errno == ENOENT) {
        out->unavailable = true; /* no procfs here: never any process metrics */
        return;
    }
    if (!read_small("/proc/self/stat", buf, sizeof buf) ||
        !parse_stat(buf, &utime, &stime, &threads, &start_ticks, &vsize))
        return;
    long tck = sysconf(_SC_CLK_TCK);
    long page = sysconf(_SC_PAGESIZE);
    if (tck <= 0 || page <= 0 || !read_btime(&btime))
        return;

    if (!read_small("/proc/self/statm", buf, sizeof buf))
        return;
    unsigned long long size_pages = 0, resident_pages = 0;
    if (sscanf(buf, "%llu %llu", &size_pages, &resident_pages) != 2)
        return;

    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) != 0)
        return;
    if (!count_fds(&out->open_fds))
        return;

    out->cpu_seconds = (double)(utime + stime) / (double)tck;
    out->threads = (double)threads;
    out->start_time_seconds = (double)btime + (double)start_ticks / (double)tck;
    out->virtual_bytes = (double)vsize;
    out->resident_bytes = (double)resident_pages * (double)page;
    /* RLIM_INFINITY shows as 2^64-1 -> 1.8446744073709552e+19, as in Go. */
    out->max_fds = (double)rl.rlim_cur;
    out->ok = true;
}
