/* The HTTP fast path: method parsing, the five families and their label
 * sets, route handles, lm_route_record into the right (method, status)
 * series (out-of-range statuses and methods bounded), business counters in
 * the same call, re-registration (same prefix, new bounds: the same
 * histogram, still counting, exposing other buckets), the limits, and the
 * option checks that refuse a configuration before anything exists. */
#include "core.h"
#include "lm_test.h"

#include <stdlib.h>

static lm_str S(const char *s)
{
    return (lm_str){s, strlen(s)};
}

static lm_family *fam(lm_registry *r, const char *name)
{
    size_t n = atomic_load(&r->nfamilies);
    for (size_t i = 0; i < n; i++)
        if (!atomic_load(&r->families[i]->retired) && strcmp(r->families[i]->name.ptr, name) == 0)
            return r->families[i];
    return NULL;
}

/* The series of f with exactly these label values, or NULL. */
static lm_series *find(lm_family *f, const char *a, const char *b, const char *c)
{
    const char *v[3] = {a, b, c};
    size_t n = atomic_load(&f->nseries);
    for (size_t i = 0; i < n; i++) {
        lm_series *s = f->series[i];
        bool eq = true;
        for (size_t k = 0; k < f->nlabels && eq; k++)
            eq = strcmp(s->values[k].ptr, v[k]) == 0;
        if (eq)
            return s;
    }
    return NULL;
}

static void test_methods(void)
{
    static const struct {
        const char *s;
        lm_method m;
    } t[] = {{"GET", LM_METHOD_GET},        {"HEAD", LM_METHOD_HEAD},
             {"POST", LM_METHOD_POST},      {"PUT", LM_METHOD_PUT},
             {"DELETE", LM_METHOD_DELETE},  {"CONNECT", LM_METHOD_CONNECT},
             {"OPTIONS", LM_METHOD_OPTIONS}, {"TRACE", LM_METHOD_TRACE},
             {"PATCH", LM_METHOD_PATCH},    {"get", LM_METHOD_OTHER},
             {"GETX", LM_METHOD_OTHER},     {"GE", LM_METHOD_OTHER},
             {"", LM_METHOD_OTHER},         {"PROPFIND", LM_METHOD_OTHER},
             {"OTHER", LM_METHOD_OTHER}};
    for (size_t i = 0; i < sizeof t / sizeof *t; i++)
        CHECK(lm_method_parse(S(t[i].s)) == t[i].m);
    CHECK(lm_method_parse((lm_str){"GET\0", 4}) == LM_METHOD_OTHER);
    CHECK(lm_method_parse((lm_str){"GETTING", 3}) == LM_METHOD_GET); /* length is what counts */
    CHECK(lm_method_parse((lm_str){NULL, 0}) == LM_METHOD_OTHER);
    CHECK(lm_method_parse((lm_str){NULL, 3}) == LM_METHOD_OTHER);
}

static void test_register(void)
{
    lm_error e = {0};
    lm_registry *r = lm_registry_new(NULL, NULL);
    lm_http *h = lm_http_register(r, NULL, &e);
    CHECK(h != NULL);
    lm_family *rq = fam(r, "http_requests_total"), *du = fam(r, "http_request_duration_seconds"),
              *by = fam(r, "http_response_size_bytes_total"),
              *in = fam(r, "http_requests_in_progress");
    CHECK(rq && du && by && in);
    CHECK(rq->type == LM_COUNTER && du->type == LM_HISTOGRAM && by->type == LM_COUNTER &&
          in->type == LM_GAUGE);
    CHECK(rq->nlabels == 3 && du->nlabels == 3 && by->nlabels == 3 && in->nlabels == 1);
    CHECK_STR(rq->label_names[0].ptr, "method");
    CHECK_STR(rq->label_names[1].ptr, "endpoint");
    CHECK_STR(rq->label_names[2].ptr, "status");
    CHECK_STR(in->label_names[0].ptr, "endpoint");
    CHECK(du->unit_scale == 1e9 && lm__family_proj(du)->n == 14);
    CHECK_EQ_U64(rq->max_series, 10000);
    CHECK_EQ_U64(h->max_routes, 1000);
    CHECK(h->requests == rq && atomic_load(&h->duration) == du);

    /* same prefix: same handle, nothing new */
    size_t nf = atomic_load(&r->nfamilies);
    CHECK(lm_http_register(r, &(lm_http_options){.prefix = ""}, &e) == h);
    CHECK_EQ_U64(atomic_load(&r->nfamilies), nf);
    /* another prefix: its own set */
    lm_http *h2 = lm_http_register(r, &(lm_http_options){.prefix = "app_", .max_routes = 2,
                                                         .max_series = 50},
                                   &e);
    CHECK(h2 != NULL && h2 != h);
    CHECK(fam(r, "app_http_requests_total") != NULL);
    CHECK(fam(r, "app_http_requests_in_progress") != NULL);
    CHECK_EQ_U64(fam(r, "app_http_requests_total")->max_series, 50);
    /* caps cannot change on the fly */
    CHECK(lm_http_register(r, &(lm_http_options){.prefix = "app_", .max_routes = 3,
                                                 .max_series = 50},
                           &e) == NULL);
    CHECK(e.code == LM_ERR_EXISTS && strstr(e.message, "max_routes 2"));

    /* bad arguments */
    CHECK(lm_http_register(NULL, NULL, &e) == NULL && e.code == LM_ERR_INVALID);
    CHECK(lm_http_register(r, &(lm_http_options){.prefix = "9x_"}, &e) == NULL);
    CHECK(e.code == LM_ERR_INVALID && strstr(e.message, "\"9x_\""));
    CHECK(lm_http_register(r, &(lm_http_options){.prefix = "a-b"}, &e) == NULL);
    CHECK(lm_http_register(r, &(lm_http_options){.prefix = "z_", .nbounds = 2}, &e) == NULL);
    CHECK(e.code == LM_ERR_INVALID && strstr(e.message, "bounds is NULL but nbounds is 2"));
    double bad[] = {1, 0.5};
    CHECK(lm_http_register(r, &(lm_http_options){.prefix = "y_", .bounds = bad, .nbounds = 2},
                           &e) == NULL);
    CHECK(e.code == LM_ERR_INVALID && strstr(e.message, "strictly increasing"));
    /* a clash with a family the host made under one of the names */
    lm_family_register(r, &(lm_family_options){.type = LM_GAUGE, .name = "x_http_requests_total"},
                       NULL);
    CHECK(lm_http_register(r, &(lm_http_options){.prefix = "x_"}, &e) == NULL);
    CHECK(e.code == LM_ERR_EXISTS && strstr(e.message, "x_http_requests_total"));
    /* at most 16 prefixes */
    int ok = 0;
    for (int i = 0; i < 20; i++) {
        char p[16];
        snprintf(p, sizeof p, "p%d_", i);
        if (lm_http_register(r, &(lm_http_options){.prefix = p, .max_series = 10}, &e))
            ok++;
    }
    CHECK_EQ_U64(ok, 16 - 2); /* "" and "app_" already there */
    CHECK(e.code == LM_ERR_LIMIT && strstr(e.message, "at most 16 prefixes"));
    lm_registry_free(r);
}

static void test_routes_and_record(void)
{
    lm_error e = {0};
    lm_registry *r = lm_registry_new(NULL, NULL);
    lm_http *h = lm_http_register(r, &(lm_http_options){.prefix = "t_", .max_routes = 3}, &e);
    CHECK(h != NULL);
    lm_family *rq = fam(r, "t_http_requests_total"), *du = fam(r, "t_http_request_duration_seconds"),
              *by = fam(r, "t_http_response_size_bytes_total"), *in = fam(r, "t_http_requests_in_progress");

    lm_route *a = lm_http_route(h, S("/api"), &e);
    CHECK(a != NULL && lm_http_route(h, S("/api"), &e) == a);
    lm_route *b = lm_http_route(h, S("/b\xff"), &e); /* sanitised name */
    CHECK(b != NULL && lm_http_route(h, S("/b\xfe"), &e) == b);
    CHECK_STR(b->name.ptr, "/b\xEF\xBF\xBD");
    lm_route *c = lm_http_route(h, S(""), &e); /* the empty name is a name */
    CHECK(c != NULL);
    CHECK(lm_http_route(h, S("/d"), &e) == NULL);
    CHECK(e.code == LM_ERR_LIMIT && strstr(e.message, "route \"/d\" not registered: max_routes (3)"));
    CHECK(lm_http_route(h, S("/api"), &e) == a); /* existing ones still resolve */
    CHECK(lm_http_route(NULL, S("/x"), &e) == NULL && e.code == LM_ERR_INVALID);
    CHECK(lm_http_route(h, (lm_str){NULL, 2}, &e) == NULL && e.code == LM_ERR_INVALID);

    /* in-flight gauge: one series per route, a cell the host adds to */
    int64_t *ia = lm_route_inflight_cell(a);
    CHECK(ia != NULL && ia != lm_route_inflight_cell(b));
    __atomic_fetch_add(ia, 1, __ATOMIC_RELAXED);
    lm_series *ias = find(in, "/api", NULL, NULL);
    CHECK(ias != NULL && lm_series_count(ias) == 1);
    __atomic_fetch_sub(ia, 1, __ATOMIC_RELAXED);
    CHECK(lm_route_inflight_cell(NULL) == NULL);

    /* nothing is created until a (method, status) is first recorded */
    CHECK_EQ_U64(atomic_load(&rq->nseries), 0);
    lm_route_record(a, LM_METHOD_GET, 200, 1500000, 100, NULL, 0); /* 1.5 ms */
    lm_route_record(a, LM_METHOD_GET, 200, 2500000, 50, NULL, 0);  /* 2.5 ms: on the edge */
    lm_route_record(a, LM_METHOD_GET, 200, -5, 0, NULL, 0);        /* negative: 0 */
    lm_route_record(a, LM_METHOD_POST, 201, 20000000000, 7, NULL, 0); /* 20 s: +Inf */
    CHECK_EQ_U64(atomic_load(&rq->nseries), 2);
    lm_series *g200 = find(rq, "GET", "/api", "200");
    CHECK(g200 != NULL && lm_series_count(g200) == 3);
    lm_series *g200b = find(by, "GET", "/api", "200");
    CHECK(g200b != NULL && lm_series_count(g200b) == 150);
    lm_series *g200d = find(du, "GET", "/api", "200");
    CHECK(g200d != NULL);
    uint64_t bk[15], cnt, lo;
    int64_t hi;
    lm__histogram_read(g200d, bk, &cnt, &hi, &lo);
    CHECK_EQ_U64(cnt, 3);
    CHECK_EQ_U64(bk[0], 1); /* 0 ns */
    CHECK_EQ_U64(bk[1], 2); /* 1.5 ms and exactly 2.5 ms (le is inclusive) */
    CHECK(hi == 0 && lo == 4000000);
    lm_series *p201d = find(du, "POST", "/api", "201");
    lm__histogram_read(p201d, bk, &cnt, &hi, &lo);
    CHECK_EQ_U64(bk[14], 1);
    CHECK(lo == 20000000000ULL);

    /* statuses: 100..599 are themselves, anything else is "other" */
    int statuses[] = {99, 600, 0, -1, 1000, 2147483647, -2147483647 - 1, 100, 599};
    for (size_t i = 0; i < sizeof statuses / sizeof *statuses; i++)
        lm_route_record(b, LM_METHOD_GET, statuses[i], 1, 1, NULL, 0);
    CHECK(find(rq, "GET", "/b\xEF\xBF\xBD", "other") != NULL);
    CHECK_EQ_U64(lm_series_count(find(rq, "GET", "/b\xEF\xBF\xBD", "other")), 7);
    CHECK_EQ_U64(lm_series_count(find(rq, "GET", "/b\xEF\xBF\xBD", "100")), 1);
    CHECK_EQ_U64(lm_series_count(find(rq, "GET", "/b\xEF\xBF\xBD", "599")), 1);
    CHECK(find(rq, "GET", "/b\xEF\xBF\xBD", "99") == NULL);
    CHECK(find(rq, "GET", "/b\xEF\xBF\xBD", "600") == NULL);

    /* methods: each index is its own label; out-of-range enums are OTHER */
    static const char *const names[] = {"GET",     "HEAD",  "POST",  "PUT",  "DELETE",
                                        "CONNECT", "OPTIONS", "TRACE", "PATCH", "OTHER"};
    for (int m = 0; m < LM_METHOD_COUNT; m++)
        lm_route_record(c, (lm_method)m, 404, 1, 0, NULL, 0);
    lm_route_record(c, (lm_method)42, 404, 1, 0, NULL, 0);
    lm_route_record(c, (lm_method)-1, 404, 1, 0, NULL, 0);
    for (int m = 0; m < LM_METHOD_COUNT; m++) {
        lm_series *s = find(rq, names[m], "", "404");
        CHECK(s != NULL);
        CHECK_EQ_U64(lm_series_count(s), m == LM_METHOD_OTHER ? 3 : 1);
    }

    /* business counters ride along; NULLs and wrong types are skipped */
    lm_family *biz = lm_family_register(
        r, &(lm_family_options){.type = LM_COUNTER, .name = "orders_total",
                                .label_names = (const char *const[]){"kind"}, .nlabels = 1},
        &e);
    lm_series *o1 = lm_series_get(biz, (lm_str[]){S("paid")}, &e);
    lm_series *o2 = lm_series_get(biz, (lm_str[]){S("big")}, &e);
    lm_series *gauge = lm_series_get(in, (lm_str[]){S("zz")}, &e);
    lm_registry *other = lm_registry_new(NULL, NULL);
    lm_family *of = lm_family_register(other, &(lm_family_options){.type = LM_COUNTER,
                                                                    .name = "x_total"}, &e);
    lm_series *foreign = lm_series_get(of, NULL, &e);
    lm_series *const cs[] = {o1, o2, NULL, gauge, o1, foreign};
    lm_route_record(a, LM_METHOD_GET, 200, 1, 0, cs, 6);
    lm_route_record(a, LM_METHOD_GET, 200, 1, 0, cs, 1);
    lm_route_record(NULL, LM_METHOD_GET, 200, 1, 0, cs, 6); /* no route: nothing */
    CHECK_EQ_U64(lm_series_count(o1), 3);
    CHECK_EQ_U64(lm_series_count(o2), 1);
    CHECK_EQ_U64(lm_series_count(gauge), 0);
    CHECK_EQ_U64(lm_series_count(foreign), 1); /* into its own registry's shard */
    CHECK_EQ_U64(lm_series_count(g200), 5);
    lm_registry_free(other);
    lm_registry_free(r);
}

static void test_rebounds(void)
{
    lm_error e = {0};
    lm_registry *r = lm_registry_new(NULL, NULL);
    lm_http *h = lm_http_register(r, NULL, &e);
    lm_route *a = lm_http_route(h, S("/a"), &e);
    lm_route_record(a, LM_METHOD_GET, 200, 3000000, 10, NULL, 0);
    lm_route_record(a, LM_METHOD_PUT, 500, 3000000, 10, NULL, 0);
    lm_family *d = atomic_load(&h->duration);
    lm_family *rq = h->requests;
    lm_series *gs = find(d, "GET", "/a", "200");
    size_t nfam = atomic_load(&r->nfamilies);

    /* identical bounds given explicitly: nothing changes */
    size_t nb;
    const double *def = lm_default_latency_bounds(&nb);
    const lm_hproj *p0 = lm__family_proj(d);
    CHECK(lm_http_register(r, &(lm_http_options){.bounds = def, .nbounds = nb}, &e) == h);
    CHECK(lm__family_proj(d) == p0 && d->layout->n == 14);

    /* other bounds: the same family and series expose them; 2 ms and 4 ms
     * are new to the union, so it grows to 16 and the series get new cells
     * linked to their old ones */
    double nbnds[] = {0.002, 0.004};
    CHECK(lm_http_register(r, &(lm_http_options){.bounds = nbnds, .nbounds = 2}, &e) == h);
    CHECK(atomic_load(&h->duration) == d && !atomic_load(&d->retired));
    CHECK_EQ_U64(atomic_load(&r->nfamilies), nfam);
    CHECK(lm__family_proj(d)->n == 2 && d->layout->n == 16);
    CHECK(h->requests == rq && !atomic_load(&rq->retired)); /* counters kept */
    CHECK_EQ_U64(atomic_load(&d->nseries), 2);
    CHECK(a->slots[LM_METHOD_GET][100]->duration == gs);
    const lm_hcells *c = lm__hcells(gs);
    CHECK(c != &gs->hc0 && c->prev == &gs->hc0 && c->nb == 16);
    lm_route_record(a, LM_METHOD_GET, 200, 3000000, 10, NULL, 0);
    uint64_t bk[LM_MAX_BOUNDS + 1], cnt, lo;
    int64_t hi;
    lm__histogram_read(gs, bk, &cnt, &hi, &lo);
    CHECK_EQ_U64(cnt, 2); /* both observations, whatever the buckets */
    CHECK_EQ_U64(lo, 6000000);
    /* 3 ms after the change is in (2 ms, 4 ms]; 3 ms before it was counted
     * in (2.5 ms, 5 ms], above the new bound 4 ms: the documented lower
     * estimate of a bound new to the union */
    CHECK_EQ_U64(bk[0], 0);
    CHECK_EQ_U64(bk[1], 1);
    CHECK_EQ_U64(bk[2], 1);
    CHECK_EQ_U64(lm_series_count(gs), 2);
    CHECK_EQ_U64(lm_series_count(find(rq, "GET", "/a", "200")), 2);
    /* a slot created after the change lands in the same family */
    lm_route_record(a, LM_METHOD_HEAD, 204, 1, 0, NULL, 0);
    CHECK(find(d, "HEAD", "/a", "204") != NULL);
    CHECK(lm__hcells(find(d, "HEAD", "/a", "204"))->nb == 16);
    /* invalid new bounds: refused as invalid, nothing moves */
    double badb[] = {0.5, 0.1};
    const lm_hproj *p1 = lm__family_proj(d);
    CHECK(lm_http_register(r, &(lm_http_options){.bounds = badb, .nbounds = 2}, &e) == NULL);
    CHECK(e.code == LM_ERR_INVALID && strstr(e.message, "strictly increasing"));
    double many[65];
    for (int i = 0; i < 65; i++)
        many[i] = i + 1;
    CHECK(lm_http_register(r, &(lm_http_options){.bounds = many, .nbounds = 65}, &e) == NULL);
    CHECK(e.code == LM_ERR_INVALID && strstr(e.message, "65 bounds; at most 64"));
    CHECK(lm__family_proj(d) == p1 && d->layout->n == 16);
    /* and back to the defaults: a projection only (every default bound is
     * in the union), the count continues */
    CHECK(lm_http_register(r, NULL, &e) == h);
    CHECK(lm__family_proj(d)->n == 14 && d->layout->n == 16 && lm__hcells(gs) == c);
    CHECK_EQ_U64(atomic_load(&d->nseries), 3);
    lm__histogram_read(gs, bk, &cnt, &hi, &lo);
    CHECK_EQ_U64(cnt, 2);
    CHECK_EQ_U64(bk[2], 2); /* both 3 ms observations are in (2.5 ms, 5 ms] */
    lm_registry_free(r);
}

static void test_folded_routes(void)
{
    /* cap 2 per family: the third (method, status) of the route folds */
    lm_error e = {0};
    lm_registry *r = lm_registry_new(NULL, NULL);
    lm_http *h = lm_http_register(r, &(lm_http_options){.max_series = 2}, &e);
    lm_route *a = lm_http_route(h, S("/a"), &e);
    for (int st = 200; st < 205; st++)
        lm_route_record(a, LM_METHOD_GET, st, 1, 1, NULL, 0);
    lm_route_record(a, LM_METHOD_GET, 204, 1, 1, NULL, 0);
    CHECK_EQ_U64(atomic_load(&h->requests->nseries), 2);
    CHECK_EQ_U64(atomic_load(&h->requests->folded), 3); /* once per slot, not per request */
    lm_series *ov = atomic_load(&h->requests->overflow);
    CHECK(ov != NULL && lm_series_count(ov) == 4);
    lm_family *d = atomic_load(&h->duration);
    lm_series *dov = atomic_load(&d->overflow);
    CHECK(lm_series_count(dov) == 4);
    /* other buckets keep the overflow series counting, through the growth */
    double b[] = {1.5};
    CHECK(lm_http_register(r, &(lm_http_options){.max_series = 2, .bounds = b, .nbounds = 1},
                           &e) == h);
    CHECK(atomic_load(&h->duration) == d && atomic_load(&d->overflow) == dov);
    CHECK_EQ_U64(atomic_load(&d->folded), 3);
    lm_route_record(a, LM_METHOD_GET, 203, 1, 1, NULL, 0);
    CHECK(lm_series_count(dov) == 5 && lm__hcells(dov)->prev == &dov->hc0);
    lm_registry_free(r);
}

static void test_rebounds_limit(void)
{
    /* not enough cells to grow the union: refused before anything changes */
    lm_error e = {0};
    lm_registry *r = lm_registry_new(&(lm_registry_options){.slot_capacity = 80}, NULL);
    lm_http *h = lm_http_register(r, &(lm_http_options){.max_series = 5}, &e);
    CHECK(h != NULL); /* 1 + 17 + 1 + 1 cells of overflow reserves */
    lm_route *a = lm_http_route(h, S("/a"), &e);
    lm_route_record(a, LM_METHOD_GET, 200, 1, 1, NULL, 0); /* 20 more: 40 */
    lm_family *d = atomic_load(&h->duration);
    const lm_hproj *p = lm__family_proj(d);
    double big[40];
    for (int i = 0; i < 40; i++)
        big[i] = i + 1;
    /* 1, 5 and 10 are default bounds: 51 in the union, 54 cells for the
     * series and 54 for the overflow spare */
    CHECK(lm_http_register(r, &(lm_http_options){.max_series = 5, .bounds = big, .nbounds = 40},
                           &e) == NULL);
    CHECK(e.code == LM_ERR_LIMIT && strstr(e.message, "need 108 new cells for 51 distinct"));
    CHECK(atomic_load(&h->duration) == d && lm__family_proj(d) == p && d->layout->n == 14);
    /* bounds already in the union need no cells */
    double sub[] = {0.005, 0.5};
    CHECK(lm_http_register(r, &(lm_http_options){.max_series = 5, .bounds = sub, .nbounds = 2},
                           &e) == h);
    CHECK(lm__family_proj(d)->n == 2 && r->slots_used == 40);
    lm_registry_free(r);
}

/* http_request_size_bytes_total: a counter beside the response bytes, fed
 * by lm_route_record_sized and lm_route_record_ex in the same call;
 * lm_route_record adds nothing to it. */
static void test_request_bytes(void)
{
    lm_error e = {0};
    lm_registry *r = lm_registry_new(NULL, NULL);
    lm_http *h = lm_http_register(r, &(lm_http_options){.prefix = "q_"}, &e);
    CHECK(h != NULL);
    lm_family *qb = fam(r, "q_http_request_size_bytes_total");
    CHECK(qb != NULL && qb == h->request_bytes && qb->type == LM_COUNTER && qb->nlabels == 3);
    CHECK_STR(qb->label_names[0].ptr, "method");
    CHECK_STR(qb->label_names[1].ptr, "endpoint");
    CHECK_STR(qb->label_names[2].ptr, "status");
    lm_route *up = lm_http_route(h, S("upload"), &e);
    lm_route_record_sized(up, LM_METHOD_POST, 201, 1000, 4096, 17, NULL, 0);
    lm_route_record_sized(up, LM_METHOD_POST, 201, 1000, 1, 0, NULL, 0);
    lm_route_record(up, LM_METHOD_POST, 201, 1000, 5, NULL, 0);
    lm_request_record rec = {.method = LM_METHOD_POST, .status = 201, .duration_ns = 1,
                             .response_bytes = 3, .request_bytes = 1u << 20};
    lm_route_record_ex(up, &rec);
    lm_route_record_sized(up, LM_METHOD_PUT, 413, 1000, 0, 0, NULL, 0);
    CHECK_EQ_U64(lm_series_count(find(qb, "POST", "upload", "201")), 4096 + 1 + (1u << 20));
    CHECK_EQ_U64(lm_series_count(find(h->bytes, "POST", "upload", "201")), 17 + 5 + 3);
    CHECK_EQ_U64(lm_series_count(find(h->requests, "POST", "upload", "201")), 4);
    /* a request that read nothing still has its (zero) series, like bytes */
    CHECK(find(qb, "PUT", "upload", "413") != NULL);
    CHECK_EQ_U64(lm_series_count(find(qb, "PUT", "upload", "413")), 0);
    lm_route_record_sized(NULL, LM_METHOD_GET, 200, 1, 1, 1, NULL, 0); /* ignored */
    lm_registry_free(r);
}

/* The option checks made before anything exists agree with the calls that
 * create: each value one refuses, the other refuses with the same reason,
 * and each value one accepts, the other accepts. */
static void test_option_checks(void)
{
    lm_error a = {0}, b = {0};
    CHECK(lm_registry_options_check(NULL, &a) == 0);
    CHECK(lm_http_options_check(NULL, &a) == 0);

    static const lm_registry_options bad_reg[] = {
        {.max_shards = 4097},
        {.max_families = ((size_t)1 << 20) + 1},
        {.slot_capacity = (size_t)UINT32_MAX},
        {.slot_capacity = (size_t)1 << 30, .max_shards = 4096},
    };
    for (size_t i = 0; i < sizeof bad_reg / sizeof *bad_reg; i++) {
        CHECK(lm_registry_options_check(&bad_reg[i], &a) == -1);
        CHECK(a.code == LM_ERR_INVALID && strstr(a.message, "exceeds"));
        CHECK(lm_registry_new(&bad_reg[i], &b) == NULL);
        CHECK(b.code == a.code);
        CHECK_STR(b.message, a.message);
    }
    lm_registry_options edge = {.max_shards = 4096, .max_families = (size_t)1 << 20,
                                .slot_capacity = 1024, .native_capacity = 1024};
    CHECK(lm_registry_options_check(&edge, &a) == 0);
    lm_registry *r = lm_registry_new(&edge, &b);
    CHECK(r != NULL);

    static const lm_http_options bad_http[] = {
        {.prefix = "9x_"},
        {.prefix = "ok_", .nbounds = 3},
        {.prefix = "ok_", .max_routes = ((size_t)1 << 20) + 1},
        {.prefix = "ok_", .max_series = ((size_t)1 << 22) + 1},
        {.prefix = "ok_", .flags = 0x80},
    };
    static const char *const why[] = {"must match", "bounds is NULL", "max_routes",
                                      "max_series", "unknown flags"};
    for (size_t i = 0; i < sizeof bad_http / sizeof *bad_http; i++) {
        CHECK(lm_http_options_check(&bad_http[i], &a) == -1);
        CHECK(a.code == LM_ERR_INVALID && strstr(a.message, why[i]));
        CHECK(lm_http_register(r, &bad_http[i], &b) == NULL);
        CHECK(b.code == a.code);
        CHECK_STR(b.message, a.message);
    }
    /* The message names the namespace, and names none for limits given
     * without a prefix (a host checking limits every namespace will get). */
    lm_http_options named = {.prefix = "ok_", .max_routes = ((size_t)1 << 20) + 1};
    CHECK(lm_http_options_check(&named, &a) == -1);
    CHECK_STR(a.message, "http prefix \"ok_\": max_routes 1048577 exceeds the maximum of 1048576");
    lm_http_options unnamed = {.max_series = ((size_t)1 << 22) + 1};
    CHECK(lm_http_options_check(&unnamed, &a) == -1);
    CHECK_STR(a.message, "http metrics: max_series 4194305 exceeds the maximum of 4194304");
    CHECK(lm_http_register(r, &unnamed, &b) == NULL);
    CHECK_STR(b.message, a.message);
    lm_http_options fine = {.prefix = "ok_", .max_routes = (size_t)1 << 20,
                            .max_series = (size_t)1 << 22};
    CHECK(lm_http_options_check(&fine, &a) == 0);
    CHECK(lm_http_register(r, &fine, &b) != NULL);
    lm_registry_free(r);
}

int main(void)
{
    test_methods();
    test_register();
    test_option_checks();
    test_routes_and_record();
    test_rebounds();
    test_folded_routes();
    test_rebounds_limit();
    test_request_bytes();
    TEST_MAIN_END();
}
