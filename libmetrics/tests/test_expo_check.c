/* The C structure checker (expo_check.c) accepts valid bodies and rejects
 * each kind of broken one with the right message: without this, a fuzzer
 * or concurrency test that relies on it could pass vacuously. */
#include "expo_check.h"
#include "lm_test.h"

#include <stdlib.h>

typedef struct {
    lm_format fmt;
    const char *body;
    const char *want; /* NULL: valid; else a substring of the message */
} ck_case;

#define T LM_FORMAT_TEXT
#define OM LM_FORMAT_OPENMETRICS

#define HIST_OK                                                                                   \
    "h_bucket{a=\"x\",le=\"0.1\"} 1\nh_bucket{a=\"x\",le=\"1.0\"} 2\n"                          \
    "h_bucket{a=\"x\",le=\"+Inf\"} 3\nh_sum{a=\"x\"} 4.5\nh_count{a=\"x\"} 3\n"

static const ck_case cases[] = {
    /* valid */
    {T, "", NULL},
    {OM, "# EOF\n", NULL},
    {OM, "# EOF", NULL},
    {T, "# HELP c_total Help \\\\ and \\n.\n# TYPE c_total counter\nc_total{a=\"q\\\"\\\\\\n\"} 3\n", NULL},
    {OM, "# TYPE c counter\n# HELP c Say \\\"hi\\\".\nc_total{a=\"\"} 0\n# EOF\n", NULL},
    {T, "# TYPE h histogram\n" HIST_OK, NULL},
    {OM, "# TYPE h histogram\n" HIST_OK "# EOF\n", NULL},
    {OM, "# TYPE h histogram\nh_bucket{le=\"-1.0\"} 1\nh_bucket{le=\"+Inf\"} 2\n# EOF\n", NULL},
    {T, "# a plain comment\nuntyped_thing 1.5e+06\n", NULL},
    {T, "g{b=\"1\",a=\"2\"} -1\ng{a=\"1\",b=\"2\"} 1\n", NULL},
    {OM, "# TYPE g gauge\ng NaN\ng{a=\"x\"} -Inf\n# EOF\n", NULL},
    {T, "x{a=\"caf\xc3\xa9 \xf0\x9f\x98\x80\"} 1\n", NULL},

    /* broken */
    {T, "x 1", "line feed"},
    {OM, "x 1\n", "EOF"},
    {OM, "# EOF\n# EOF\n", "after \"# EOF\""},
    {OM, "# EOF\nx 1\n", "after \"# EOF\""},
    {OM, "x 1\n\n# EOF\n", "blank line"},
    {T, "x 1\r\n", "carriage return"},
    {T, "x{a=\"\xff\"} 1\n", "invalid UTF-8"},
    {T, "x{a=\"\xc0\xaf\"} 1\n", "invalid UTF-8"},   /* overlong '/' */
    {T, "x{a=\"\xed\xa0\x80\"} 1\n", "invalid UTF-8"}, /* surrogate */
    {T, "x{a=\"\xe2\x82\"} 1\n", "invalid UTF-8"},     /* truncated */
    {T, "x 1\nx 2\n", "duplicate series"},
    {T, "x{a=\"1\",b=\"2\"} 1\nx{b=\"2\",a=\"1\"} 1\n", "duplicate series"},
    {T, "x{a=\"1\",a=\"2\"} 1\n", "duplicate label"},
    {T, "x{__a=\"1\"} 1\n", "reserved label"},
    {T, "x 1\ny 1\nx 2\n", "interleaved"},
    {T, "x 1\n# TYPE x gauge\n", "after its samples"},
    {T, "# TYPE x gauge\n# TYPE x gauge\nx 1\n", "second TYPE"},
    {T, "# HELP x a\n# HELP x b\nx 1\n", "second HELP"},
    {T, "# TYPE x widget\nx 1\n", "unknown type"},
    {OM, "# TYPE x untyped\nx 1\n# EOF\n", "unknown type"},
    {OM, "# random comment\n# EOF\n", "comment line"},
    {T, "# HELP x bad \\q escape\nx 1\n", "undefined escape"},
    {T, "# HELP x no \\\"quote escape in text\nx 1\n", "undefined escape"},
    {OM, "# HELP x raw \"quote\n# EOF\n", "unescaped double quote"},
    {T, "x{a=\"open} 1\n", "not terminated"},
    {T, "x{a=\"v\\x\"} 1\n", "undefined escape"},
    {T, "x 1.2.3\n", "not a number"},
    {T, "x 0x10\n", "not a number"},
    {T, "x  1\n", "not a number"},
    {T, "x{a=\"1\"}1\n", "space before the value"},
    {T, "# TYPE c_total counter\nc_total -1\n", "negative"},
    {OM, "# TYPE c counter\nc_total NaN\n# EOF\n", "NaN"},
    {T, "x{le=\"1\"} 1\n", NULL}, /* le is an ordinary label outside histograms */
    {T, "# TYPE h histogram\nh_bucket{le=\"+Inf\"} 1\nh_sum{le=\"1\"} 1\nh_count 1\n",
     "not a histogram bucket"},
    {T, "# TYPE h histogram\nh_bucket{le=\"1.0\"} 2\nh_bucket{le=\"+Inf\"} 1\nh_sum 1\nh_count 1\n",
     "not cumulative"},
    {T, "# TYPE h histogram\nh_bucket{le=\"1.0\"} 1\nh_bucket{le=\"0.5\"} 1\nh_bucket{le=\"+Inf\"} 1\nh_sum 1\nh_count 1\n",
     "does not increase"},
    {T, "# TYPE h histogram\nh_bucket{le=\"1.0\"} 1\nh_sum 1\nh_count 1\n", "+Inf"},
    {T, "# TYPE h histogram\nh_bucket{le=\"+Inf\"} 2\nh_sum 1\nh_count 3\n", "_count 3 != +Inf bucket 2"},
    {T, "# TYPE h histogram\nh_bucket{le=\"+Inf\"} 2\nh_count 2\n", "lacks _sum"},
    {T, "# TYPE h histogram\nh_bucket{le=\"+Inf\"} 2\nh_sum 2\n", "lacks _count"},
    {OM, "# TYPE h histogram\nh_bucket{le=\"+Inf\"} 2\nh_count 2\n# EOF\n", "_count without _sum"},
    {OM, "# TYPE h histogram\nh_bucket{le=\"-1.0\"} 1\nh_bucket{le=\"+Inf\"} 2\nh_sum 1\nh_count 2\n# EOF\n",
     "negative bucket thresholds"},
    {OM, "# TYPE h histogram\nh_bucket{le=\"+Inf\"} 2\nh_sum -1.5\nh_count 2\n# EOF\n", "is negative"},
    {OM, "# TYPE h histogram\nh_bucket{le=\"+inf\"} 2\nh_sum 1\nh_count 2\n# EOF\n", "spelled"},
    {T, "# TYPE h histogram\nh_bucket{le=\"+Inf\"} 1.5\nh_sum 1\nh_count 1.5\n", "not an integer"},
    {T, "# TYPE h histogram\nh_bucket{a=\"1\",le=\"+Inf\"} 1\nh_sum{a=\"1\"} 1\nh_count{a=\"1\"} 1\n"
        "h_bucket{a=\"2\",le=\"+Inf\"} 1\nh_sum{a=\"2\"} 1\nh_count{a=\"2\"} 1\nh_bucket{a=\"1\",le=\"5.0\"} 1\n",
     "interleaved"},
    {T, "# TYPE h histogram\nh_bucket{le=\"+Inf\"} 1\nh_sum 1\nh_count 1\nh_bucket{le=\"2.0\"} 1\n",
     "bucket after"},
    {T, "# TYPE h histogram\nh_sum 1\nh_count 0\n", "without buckets"},
    {T, "# TYPE h histogram\nh_bucket 1\n", "without an le label"},
    {OM, "# TYPE a counter\na_total 1\n# TYPE a_total gauge\na_total 2\n# EOF\n", "a_total"},
    {T, "# TYPE h histogram\n" HIST_OK "# TYPE h_count gauge\nh_count 1\n", "h_count"},
};

struct tally {
    int counters, hist;
};

static void cb(void *ctx, const expo_sample *s)
{
    struct tally *t = ctx;
    if (s->type == EXPO_COUNTER && s->family_len == 1 && s->v == 5)
        t->counters++;
    if (s->type == EXPO_HISTOGRAM && s->family_len == 1)
        t->hist++;
}

int main(void)
{
    char msg[512];
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const ck_case *k = &cases[i];
        expo_check_stats st;
        int rc = expo_check(k->body, strlen(k->body), k->fmt, NULL, NULL, &st, msg, sizeof msg);
        lm_test_checks++;
        bool ok = k->want ? (rc != 0 && strstr(msg, k->want) != NULL) : rc == 0;
        if (!ok) {
            lm_test_failures++;
            fprintf(stderr, "case %zu (%s) %s: rc=%d msg=\"%s\" want %s%s%s\n", i,
                    k->fmt == T ? "text" : "openmetrics", k->body, rc, msg,
                    k->want ? "failure containing \"" : "success", k->want ? k->want : "",
                    k->want ? "\"" : "");
        }
    }
    /* The sample callback sees every sample with its family. */
    const char *body = "# TYPE c counter\nc_total{a=\"1\"} 5\n# TYPE h histogram\n" HIST_OK "# EOF\n";
    struct tally t = {0, 0};
    expo_check_stats st;
    CHECK(expo_check(body, strlen(body), OM, cb, &t, &st, msg, sizeof msg) == 0);
    CHECK(t.counters == 1 && t.hist == 5);
    CHECK(st.families == 2 && st.samples == 6 && st.histogram_series == 1);
    TEST_MAIN_END();
}
