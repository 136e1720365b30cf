/* Route template matcher: syntax, convertors, precedence, path edge cases
 * and every validation error. */
#include "libmetrics.h"
#include "lm_test.h"

#include <stdlib.h>
#include <string.h>

static lm_str S(const char *s) { return (lm_str){s, strlen(s)}; }

static lm_matcher *build(const char *const *t, size_t n)
{
    lm_str v[64];
    for (size_t i = 0; i < n; i++)
        v[i] = S(t[i]);
    lm_error e = {0};
    size_t bad = 0;
    lm_matcher *m = lm_matcher_new(v, n, &bad, &e);
    if (m == NULL)
        fprintf(stderr, "lm_matcher_new: %s (template %zu)\n", e.message, bad);
    return m;
}

/* The template path resolves to, or "-" for none. */
static const char *match(const lm_matcher *m, const char *const *t, const char *path)
{
    size_t i = lm_matcher_match(m, S(path));
    return i == LM_MATCH_NONE ? "-" : t[i];
}

#define N(a) (sizeof(a) / sizeof((a)[0]))

static void test_basic(void)
{
    static const char *const t[] = {
        "/", "/v1/customers", "/v1/customers/{cid}", "/v1/customers/me",
        "/v1/customers/{cid}/orders", "/files/{file_path:path}", "/v1/search"};
    lm_matcher *m = build(t, N(t));
    CHECK(m != NULL);
    CHECK_STR(match(m, t, "/"), "/");
    CHECK_STR(match(m, t, "/v1/customers"), "/v1/customers");
    CHECK_STR(match(m, t, "/v1/customers/42"), "/v1/customers/{cid}");
    CHECK_STR(match(m, t, "/v1/customers/me"), "/v1/customers/me");
    CHECK_STR(match(m, t, "/v1/customers/42/orders"), "/v1/customers/{cid}/orders");
    CHECK_STR(match(m, t, "/v1/customers/me/orders"), "/v1/customers/{cid}/orders");
    /* {p} is exactly one non-empty segment */
    CHECK_STR(match(m, t, "/v1/customers/"), "-");
    CHECK_STR(match(m, t, "/v1/customers//orders"), "-");
    CHECK_STR(match(m, t, "/v1/customers/x/y"), "-");
    /* no normalisation: trailing slash, //, dot segments are literal */
    CHECK_STR(match(m, t, "/v1/search/"), "-");
    CHECK_STR(match(m, t, "/v1//search"), "-");
    CHECK_STR(match(m, t, "//v1/search"), "-");
    CHECK_STR(match(m, t, "/v1/./search"), "-");
    CHECK_STR(match(m, t, "/v1/customers/.."), "/v1/customers/{cid}");
    /* {p:path}: the rest, slashes included, possibly empty; the '/' before
     * it is literal */
    CHECK_STR(match(m, t, "/files/a"), "/files/{file_path:path}");
    CHECK_STR(match(m, t, "/files/a/b/c"), "/files/{file_path:path}");
    CHECK_STR(match(m, t, "/files/"), "/files/{file_path:path}");
    CHECK_STR(match(m, t, "/files//x//"), "/files/{file_path:path}");
    CHECK_STR(match(m, t, "/files"), "-");
    /* not a path */
    CHECK_STR(match(m, t, ""), "-");
    CHECK_STR(match(m, t, "*"), "-");
    CHECK_STR(match(m, t, "v1/search"), "-");
    CHECK(lm_matcher_match(m, (lm_str){NULL, 0}) == LM_MATCH_NONE);
    CHECK(lm_matcher_match(NULL, S("/")) == LM_MATCH_NONE);
    /* bytes are bytes: a decoded %2F is a real '/', other bytes literal */
    CHECK_STR(match(m, t, "/v1/customers/\xff\xfe"), "/v1/customers/{cid}");
    CHECK_STR(match(m, t, "/v1/customers/a%2Fb"), "/v1/customers/{cid}");
    lm_matcher_free(m);
}

static void test_precedence(void)
{
    static const char *const t[] = {
        "/{a}/b/c",   "/x/{b}/{c}",   "/x/{b:path}", "/x/y/{z}", "/n/{id:int}", "/n/{v:float}",
        "/n/{u:uuid}", "/n/{s}",      "/n/{p:path}", "/{any:path}"};
    lm_matcher *m = build(t, N(t));
    CHECK(m != NULL);
    /* more literal segments first, whatever the position */
    CHECK_STR(match(m, t, "/x/b/c"), "/{a}/b/c");
    CHECK_STR(match(m, t, "/x/y/q"), "/x/y/{z}");
    CHECK_STR(match(m, t, "/x/q/r"), "/x/{b}/{c}");
    CHECK_STR(match(m, t, "/x/q"), "/x/{b:path}");
    CHECK_STR(match(m, t, "/x/q/r/s"), "/x/{b:path}");
    /* convertors: int, float, uuid, str, path */
    CHECK_STR(match(m, t, "/n/12"), "/n/{id:int}");
    CHECK_STR(match(m, t, "/n/12.5"), "/n/{v:float}");
    CHECK_STR(match(m, t, "/n/12."), "/n/{s}");
    CHECK_STR(match(m, t, "/n/.5"), "/n/{s}");
    CHECK_STR(match(m, t, "/n/-1"), "/n/{s}");
    CHECK_STR(match(m, t, "/n/123e4567-e89b-12d3-a456-426614174000"), "/n/{u:uuid}");
    CHECK_STR(match(m, t, "/n/123E4567E89B12D3A456426614174000"), "/n/{u:uuid}");
    CHECK_STR(match(m, t, "/n/123e4567-e89b-12d3-a456-42661417400"), "/n/{s}");
    /* 32 digits are an int before they are a uuid */
    CHECK_STR(match(m, t, "/n/12345678123412341234123456789012"), "/n/{id:int}");
    CHECK_STR(match(m, t, "/n/abc"), "/n/{s}");
    CHECK_STR(match(m, t, "/n/"), "/n/{p:path}");
    CHECK_STR(match(m, t, "/n/a/b"), "/n/{p:path}");
    CHECK_STR(match(m, t, "/"), "/{any:path}");
    CHECK_STR(match(m, t, "/zzz//"), "/{any:path}");
    lm_matcher_free(m);

    /* declaration order never matters */
    static const char *const a[] = {"/users/{user_id}", "/users/me"};
    static const char *const b[] = {"/users/me", "/users/{user_id}"};
    lm_matcher *ma = build(a, 2), *mb = build(b, 2);
    CHECK_STR(match(ma, a, "/users/me"), "/users/me");
    CHECK_STR(match(mb, b, "/users/me"), "/users/me");
    CHECK_STR(match(ma, a, "/users/7"), "/users/{user_id}");
    CHECK_STR(match(mb, b, "/users/7"), "/users/{user_id}");
    lm_matcher_free(ma);
    lm_matcher_free(mb);
}

static void test_deep_and_empty_segments(void)
{
    static const char *const t[] = {"/a//b", "/a/", "/a", "/{x}/{y}/{z}/{w}/{v}/{u}"};
    lm_matcher *m = build(t, N(t));
    CHECK(m != NULL);
    CHECK_STR(match(m, t, "/a//b"), "/a//b");
    CHECK_STR(match(m, t, "/a/"), "/a/");
    CHECK_STR(match(m, t, "/a"), "/a");
    CHECK_STR(match(m, t, "/1/2/3/4/5/6"), "/{x}/{y}/{z}/{w}/{v}/{u}");
    CHECK_STR(match(m, t, "/1/2/3/4/5/6/7"), "-");
    /* a path far deeper than any template */
    size_t n = 100000;
    char *deep = malloc(n + 1);
    for (size_t i = 0; i < n; i++)
        deep[i] = i % 2 ? 'x' : '/';
    deep[n] = 0;
    CHECK_STR(match(m, t, deep), "-");
    free(deep);
    lm_matcher_free(m);
}

static void expect_error(const char *const *t, size_t n, size_t want_bad, const char *want)
{
    lm_str v[8];
    for (size_t i = 0; i < n; i++)
        v[i] = S(t[i]);
    lm_error e = {0};
    size_t bad = 12345;
    lm_matcher *m = lm_matcher_new(v, n, &bad, &e);
    CHECK(m == NULL);
    CHECK(e.code == LM_ERR_INVALID);
    CHECK_EQ_U64(bad, want_bad);
    if (strstr(e.message, want) == NULL) {
        lm_test_failures++;
        fprintf(stderr, "error \"%s\" lacks \"%s\"\n", e.message, want);
    }
    lm_matcher_free(m);
}

static void test_errors(void)
{
    const char *ok = "/ok";
    expect_error((const char *[]){ok, ""}, 2, 1, "template #1 is empty");
    expect_error((const char *[]){"users"}, 1, 0, "template \"users\" must start with '/'");
    expect_error((const char *[]){"/a/{id"}, 1, 0, "template \"/a/{id\": segment 2: a parameter");
    expect_error((const char *[]){"/a/id}"}, 1, 0, "unbalanced brace");
    expect_error((const char *[]){"/a/{id}.json"}, 1, 0, "whole segment");
    expect_error((const char *[]){"/a/x{id}"}, 1, 0, "whole segment");
    expect_error((const char *[]){"/a/{{id}}"}, 1, 0, "whole segment");
    expect_error((const char *[]){"/a/{}"}, 1, 0, "parameter name must match");
    expect_error((const char *[]){"/a/{1x}"}, 1, 0, "template \"/a/{1x}\": segment 2: parameter name");
    expect_error((const char *[]){"/a/{x-y}"}, 1, 0, "parameter name must match");
    expect_error((const char *[]){"/a/{x:}"}, 1, 0, "unsupported convertor \"\"");
    expect_error((const char *[]){"/a/{x:slug}"}, 1, 0, "template \"/a/{x:slug}\": unsupported convertor \"slug\"");
    expect_error((const char *[]){"/a/{x}/{x}"}, 1, 0, "template \"/a/{x}/{x}\": parameter \"x\" appears twice");
    expect_error((const char *[]){"/a/{p:path}/b"}, 1, 0, "template \"/a/{p:path}/b\": a {name:path}");
    expect_error((const char *[]){ok, "/a/{x}", "/a/{y}"}, 3, 2,
                 "template \"/a/{y}\" has the same shape as \"/a/{x}\"");
    expect_error((const char *[]){ok, ok}, 2, 1, "same shape");
    expect_error((const char *[]){"/a\tb"}, 1, 0, "control byte (0x09)");
    char longt[LM_MATCHER_MAX_TEMPLATE_LEN + 2];
    memset(longt, 'a', sizeof longt - 1);
    longt[0] = '/';
    longt[sizeof longt - 1] = 0;
    expect_error((const char *[]){longt}, 1, 0, "bytes long; the limit is 2048");
    char deep[2 * LM_MATCHER_MAX_SEGMENTS + 3];
    for (size_t i = 0; i < sizeof deep - 1; i++)
        deep[i] = i % 2 ? 'x' : '/';
    deep[sizeof deep - 1] = 0;
    expect_error((const char *[]){deep}, 1, 0, "more than 64 segments");
    /* exactly 64 segments is fine */
    deep[2 * LM_MATCHER_MAX_SEGMENTS] = 0;
    lm_matcher *m = build((const char *[]){deep}, 1);
    CHECK(m != NULL);
    CHECK(lm_matcher_match(m, S(deep)) == 0);
    lm_matcher_free(m);

    lm_error e = {0};
    size_t bad = 0;
    CHECK(lm_matcher_new(NULL, 0, &bad, &e) == NULL);
    CHECK(bad == LM_MATCH_NONE && e.code == LM_ERR_INVALID);
    lm_str one = S("/");
    CHECK(lm_matcher_new(&one, LM_MATCHER_MAX_TEMPLATES + 1, NULL, &e) == NULL);
    lm_str nul = {NULL, 3};
    CHECK(lm_matcher_new(&nul, 1, &bad, &e) == NULL && bad == 0);
}

/* Many templates sharing prefixes: every template resolves to itself. */
static void test_many(void)
{
    enum { T = 5000 };
    char(*buf)[48] = malloc(T * sizeof *buf);
    lm_str *v = malloc(T * sizeof *v);
    for (int i = 0; i < T; i++) {
        snprintf(buf[i], sizeof buf[i], i % 2 ? "/api/r%d/{id}" : "/api/r%d/list", i / 2);
        v[i] = S(buf[i]);
    }
    lm_error e = {0};
    lm_matcher *m = lm_matcher_new(v, T, NULL, &e);
    CHECK(m != NULL);
    int wrong = 0;
    for (int i = 0; i < T; i++) {
        char p[48];
        snprintf(p, sizeof p, i % 2 ? "/api/r%d/%d" : "/api/r%d/list", i / 2, i);
        if (lm_matcher_match(m, S(p)) != (size_t)i)
            wrong++;
    }
    CHECK_EQ_U64(wrong, 0);
    CHECK(lm_matcher_match(m, S("/api/r999999/list")) == LM_MATCH_NONE);
    lm_matcher_free(m);
    free(v);
    free(buf);
}

int main(void)
{
    test_basic();
    test_precedence();
    test_deep_and_empty_segments();
    test_errors();
    test_many();
    TEST_MAIN_END();
}
