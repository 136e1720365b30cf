/* A minimal test harness: CHECK records a failure and continues, so one run
 * reports every broken assertion; main returns non-zero if any failed. */
#ifndef LM_TEST_H
#define LM_TEST_H

#include <stdio.h>
#include <string.h>

static int lm_test_failures;
static int lm_test_checks;

#define CHECK(cond)                                                                       \
    do {                                                                                  \
        lm_test_checks++;                                                                 \
        if (!(cond)) {                                                                    \
            lm_test_failures++;                                                           \
            fprintf(stderr, "%s:%d: CHECK failed: %s\n", __FILE__, __LINE__, #cond);      \
        }                                                                                 \
    } while (0)

#define CHECK_EQ_U64(a, b)                                                                \
    do {                                                                                  \
        unsigned long long lm_a_ = (unsigned long long)(a), lm_b_ = (unsigned long long)(b); \
        lm_test_checks++;                                                                 \
        if (lm_a_ != lm_b_) {                                                             \
            lm_test_failures++;                                                           \
            fprintf(stderr, "%s:%d: %s == %s failed: %llu != %llu\n", __FILE__, __LINE__, \
                    #a, #b, lm_a_, lm_b_);                                                \
        }                                                                                 \
    } while (0)

#define CHECK_STR(a, b)                                                                   \
    do {                                                                                  \
        const char *lm_a_ = (a), *lm_b_ = (b);                                            \
        lm_test_checks++;                                                                 \
        if (strcmp(lm_a_, lm_b_) != 0) {                                                  \
            lm_test_failures++;                                                           \
            fprintf(stderr, "%s:%d: %s == %s failed:\n  got:  \"%s\"\n  want: \"%s\"\n",    \
                    __FILE__, __LINE__, #a, #b, lm_a_, lm_b_);                            \
        }                                                                                 \
    } while (0)

#define TEST_MAIN_END()                                                                   \
    do {                                                                                  \
        printf("%s: %d checks, %d failed\n", __FILE__, lm_test_checks, lm_test_failures);  \
        return lm_test_failures ? 1 : 0;                                                  \
    } while (0)

#endif
