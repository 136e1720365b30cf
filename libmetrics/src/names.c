/*
 * Name rules in one place: the metric and label name patterns every
 * registration applies (family.c, http.c's prefix, exemplar labels) and the
 * public calls that let a host check a configuration with the same rules
 * before it registers anything (libmetrics.h, "names and shapes").
 */
#include "core.h"

#include <stdlib.h>
#include <string.h>

static bool is_alpha_(int c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_';
}

static bool is_digit(int c)
{
    return c >= '0' && c <= '9';
}

bool lm__valid_metric_name(const char *s)
{
    if (s == NULL || *s == '\0')
        return false;
    if (!is_alpha_((unsigned char)s[0]) && s[0] != ':')
        return false;
    for (const char *p = s + 1; *p; p++)
        if (!is_alpha_((unsigned char)*p) && !is_digit((unsigned char)*p) && *p != ':')
            return false;
    return true;
}

bool lm__valid_label_name(const char *s)
{
    if (s == NULL || *s == '\0')
        return false;
    if (!is_alpha_((unsigned char)s[0]))
        return false;
    for (const char *p = s + 1; *p; p++)
        if (!is_alpha_((unsigned char)*p) && !is_digit((unsigned char)*p))
            return false;
    return true;
}

bool lm__valid_counter_suffix(const char *name)
{
    size_t n = strlen(name), m = strlen("_total");
    return n > m && memcmp(name + n - m, "_total", m) == 0;
}

bool lm_valid_metric_name(const char *name)
{
    return lm__valid_metric_name(name);
}

bool lm_valid_label_name(const char *name)
{
    return lm__valid_label_name(name) && !(name[0] == '_' && name[1] == '_');
}

/* A name registration would accept for its type. */
static bool valid_for(lm_type type, const char *name)
{
    return lm__valid_metric_name(name) &&
           (type == LM_GAUGE || type == LM_HISTOGRAM ||
            (type == LM_COUNTER && lm__valid_counter_suffix(name)));
}

bool lm_names_clash(lm_type ta, const char *a, lm_type tb, const char *b, char *exposed,
                    size_t cap)
{
    if (!valid_for(ta, a) || !valid_for(tb, b))
        return false;
    return lm__names_clash(ta, a, tb, b, exposed, cap);
}

bool lm_builtin_clash(lm_type type, const char *name, const char *http_prefix, char *builtin,
                      size_t cap)
{
    if (!valid_for(type, name))
        return false;
    return lm__expo_builtin_clash(type, name, builtin, cap) ||
           (http_prefix != NULL && lm__http_builtin_clash(type, name, http_prefix, builtin, cap));
}
