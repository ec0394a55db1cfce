/* web/openapi.json cannot drift from the code: its paths and methods are exactly the route
 * table's (SRV_ROUTE_LIST), its Layer schemas the core's layer table (names, torch aliases,
 * parameters, defaults), its Loss schemas the loss table, and the statuses its operations
 * answer are the statuses relud sends (SRV_STATUS_LIST). Read with cJSON, an independent
 * reader. (tests/openapi/check.py validates the document itself and the replies.) */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>
#include <cmocka.h>

#include "config/cfg.h"
#include "core/nn.h"
#include "server/routes.h"
#include "server/status.h"
#include "tests/common/fs.h"
#include "tests/common/http.h"

static cJSON *doc;

static const cJSON *at(const cJSON *o, const char *key)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    if (!v)
        fail_msg("openapi.json: no \"%s\"", key);
    return v;
}

/* The schema a {"$ref": "#/components/schemas/NAME"} names. */
static const cJSON *deref(const cJSON *ref)
{
    const char *r = cJSON_GetStringValue(at(ref, "$ref"));
    assert_non_null(r);
    const char *pre = "#/components/schemas/";
    assert_true(!strncmp(r, pre, strlen(pre)));
    return at(at(at(doc, "components"), "schemas"), r + strlen(pre));
}

static void lower(char *dst, const char *src, size_t n)
{
    size_t i = 0;
    for (; src[i] && i + 1 < n; i++)
        dst[i] = (char)(src[i] >= 'A' && src[i] <= 'Z' ? src[i] + 32 : src[i]);
    dst[i] = 0;
}

static void version_is_relud(void **state)
{
    (void)state;
    assert_string_equal(cJSON_GetStringValue(at(doc, "openapi")), "3.1.0");
    assert_string_equal(cJSON_GetStringValue(at(at(doc, "info"), "version")), RELUD_VERSION);
}

/* Every route in the table has its operation, and every operation is a route. */
static void paths_are_the_route_table(void **state)
{
    (void)state;
    const cJSON *paths = at(doc, "paths");
    int bad = 0, ops = 0;
    for (int i = 0; i < SRV_R_OTHER; i++) {
        char m[16];
        lower(m, srv_route_methods[i], sizeof m);
        const cJSON *item = cJSON_GetObjectItemCaseSensitive(paths, srv_route_patterns[i]);
        if (!item || !cJSON_GetObjectItemCaseSensitive(item, m)) {
            print_error("openapi.json: the route %s %s has no operation\n", srv_route_methods[i],
                        srv_route_patterns[i]);
            bad++;
        }
    }
    static const char *const verbs[] = {"get",  "put",     "post",  "delete",
                                        "head", "options", "patch", "trace"};
    for (const cJSON *item = paths->child; item; item = item->next)
        for (const cJSON *op = item->child; op; op = op->next) {
            int verb = 0;
            for (size_t v = 0; v < sizeof verbs / sizeof *verbs; v++)
                verb |= !strcmp(op->string, verbs[v]);
            if (!verb)
                continue; /* parameters, summary, ... */
            ops++;
            int found = 0;
            for (int i = 0; i < SRV_R_OTHER && !found; i++) {
                char m[16];
                lower(m, srv_route_methods[i], sizeof m);
                found = !strcmp(srv_route_patterns[i], item->string) && !strcmp(m, op->string);
            }
            if (!found) {
                print_error("openapi.json: %s %s is not in the route table (server/routes.h)\n",
                            op->string, item->string);
                bad++;
            }
        }
    assert_int_equal(bad, 0);
    assert_int_equal(ops, SRV_R_OTHER);
}

/* Layer.oneOf is NN_LAYER_TABLE, row by row. */
static void layer_schemas(void **state)
{
    (void)state;
    const cJSON *schemas = at(at(doc, "components"), "schemas");
    const cJSON *kinds = at(at(schemas, "Layer"), "oneOf");
    assert_int_equal(cJSON_GetArraySize(kinds), NN_KIND_COUNT);
    int bad = 0;
    for (int k = 0; k < NN_KIND_COUNT; k++) {
        const struct nn_kind_info *ki = &nn_kinds[k];
        const cJSON *s = deref(cJSON_GetArrayItem(kinds, k));
        const cJSON *props = at(s, "properties"), *req = at(s, "required");
        const cJSON *names = at(at(props, "type"), "enum");
        if (cJSON_GetArraySize(names) != 2 ||
            strcmp(cJSON_GetStringValue(cJSON_GetArrayItem(names, 0)), ki->name) ||
            strcmp(cJSON_GetStringValue(cJSON_GetArrayItem(names, 1)), ki->torch)) {
            print_error("openapi.json: Layer.oneOf[%d] is not [\"%s\", \"%s\"]\n", k, ki->name,
                        ki->torch);
            bad++;
            continue;
        }
        if (!cJSON_IsFalse(at(s, "additionalProperties"))) {
            print_error("openapi.json: layer %s allows unknown parameters\n", ki->name);
            bad++;
        }
        if (cJSON_GetArraySize(props) != ki->nparams + 1) {
            print_error("openapi.json: layer %s has %d parameters, the table %d\n", ki->name,
                        cJSON_GetArraySize(props) - 1, ki->nparams);
            bad++;
        }
        for (int i = 0; i < ki->nparams; i++) {
            const struct nn_param_spec *ps = &ki->params[i];
            const cJSON *p = cJSON_GetObjectItemCaseSensitive(props, ps->name);
            int required = 0;
            for (const cJSON *r = req->child; r; r = r->next)
                required |= !strcmp(cJSON_GetStringValue(r), ps->name);
            const cJSON *def = p ? cJSON_GetObjectItemCaseSensitive(p, "default") : NULL;
            const char *why = NULL;
            switch (ps->kind) {
            case NN_P_REAL:
            case NN_P_DIM:
                if (!cJSON_IsNumber(def) || def->valuedouble != ps->def)
                    why = "default differs";
                break;
            case NN_P_APPROX:
                if (!cJSON_IsString(def) || strcmp(def->valuestring, ps->def ? "tanh" : "none"))
                    why = "default differs";
                break;
            case NN_P_WEIGHT:
                if (!required)
                    why = "not required";
                break;
            case NN_P_BIAS: {
                char *text = p ? cJSON_PrintUnformatted(p) : NULL;
                if (required || !text || !strstr(text, "\"null\""))
                    why = "not optional and nullable";
                free(text);
                break;
            }
            }
            if (!p)
                why = "missing";
            if (why) {
                print_error("openapi.json: layer %s, parameter %s: %s\n", ki->name, ps->name, why);
                bad++;
            }
        }
    }
    assert_int_equal(bad, 0);
}

/* Loss.oneOf is the loss table: names, parameter and default, class targets. */
static void loss_schemas(void **state)
{
    (void)state;
    const cJSON *schemas = at(at(doc, "components"), "schemas");
    const cJSON *losses = at(at(schemas, "Loss"), "oneOf");
    assert_int_equal(cJSON_GetArraySize(losses), NN_LOSS_COUNT);
    int bad = 0;
    for (int l = 0; l < NN_LOSS_COUNT; l++) {
        const struct nn_loss_info *li = &nn_losses[l];
        const cJSON *s = deref(cJSON_GetArrayItem(losses, l)), *props = at(s, "properties");
        const cJSON *names = at(at(props, "type"), "enum");
        if (strcmp(cJSON_GetStringValue(cJSON_GetArrayItem(names, 0)), li->name) ||
            strcmp(cJSON_GetStringValue(cJSON_GetArrayItem(names, 1)), li->torch)) {
            print_error("openapi.json: Loss.oneOf[%d] is not %s / %s\n", l, li->name, li->torch);
            bad++;
            continue;
        }
        int nprops = cJSON_GetArraySize(props); /* type, target, reduction [, param] */
        const cJSON *p = li->param ? cJSON_GetObjectItemCaseSensitive(props, li->param) : NULL;
        const cJSON *def = p ? cJSON_GetObjectItemCaseSensitive(p, "default") : NULL;
        if (nprops != 3 + (li->param != NULL) ||
            (li->param && (!cJSON_IsNumber(def) || def->valuedouble != li->param_def))) {
            print_error("openapi.json: loss %s: parameters differ from the table\n", li->name);
            bad++;
        }
        char *target = cJSON_PrintUnformatted(at(props, "target"));
        if (!!strstr(target, "\"integer\"") != !!li->class_target) {
            print_error("openapi.json: loss %s: class targets %s\n", li->name,
                        li->class_target ? "not allowed" : "allowed");
            bad++;
        }
        free(target);
    }
    assert_int_equal(bad, 0);
}

/* Statuses: every operation answers only statuses relud has, and every status relud sends
 * is some operation's; but 204 (OPTIONS) and 405 (a method the path has no operation for),
 * which info.description describes, and 408 and 499, which label requests whose client
 * left and are never sent. */
static void statuses_are_the_status_table(void **state)
{
    (void)state;
    static const unsigned codes[] = {
#define X(code, reason, cls) code,
        SRV_STATUS_LIST(X)
#undef X
    };
    enum { N = sizeof codes / sizeof *codes };
    int used[N] = {0}, bad = 0;
    const cJSON *paths = at(doc, "paths");
    for (const cJSON *item = paths->child; item; item = item->next)
        for (const cJSON *op = item->child; op; op = op->next) {
            const cJSON *rs = cJSON_GetObjectItemCaseSensitive(op, "responses");
            for (const cJSON *r = rs ? rs->child : NULL; r; r = r->next) {
                int found = 0;
                for (int i = 0; i < N; i++)
                    if ((unsigned)atoi(r->string) == codes[i])
                        found = used[i] = 1;
                if (!found) {
                    print_error("openapi.json: %s %s answers %s, not in SRV_STATUS_LIST\n",
                                op->string, item->string, r->string);
                    bad++;
                }
            }
        }
    for (int i = 0; i < N; i++)
        if (!used[i] && codes[i] != 204 && codes[i] != 405 && codes[i] != 408 && codes[i] != 499) {
            print_error("openapi.json: no operation answers %u\n", codes[i]);
            bad++;
        }
    assert_int_equal(bad, 0);
}

/* Who may call what, as the transport decides it (routes.c): the public routes need no
 * credential (security []), the admin routes the admin token, the others an access key
 * when api_keys_file is set (the document's default security); every route that checks a
 * credential lists 401, and no other does. */
static void security_is_the_route_table(void **state)
{
    (void)state;
    int bad = 0;
    for (int i = 0; i < SRV_R_OTHER; i++) {
        char m[16];
        lower(m, srv_route_methods[i], sizeof m);
        const cJSON *op = at(at(at(doc, "paths"), srv_route_patterns[i]), m);
        const cJSON *sec = cJSON_GetObjectItemCaseSensitive(op, "security");
        char *text = sec ? cJSON_PrintUnformatted(sec) : NULL;
        const char *want = srv_route_is_public((enum srv_route)i)  ? "[]"
                           : srv_route_is_admin((enum srv_route)i) ? "[{\"adminToken\":[]}]"
                                                                   : NULL;
        int ok = want ? text && !strcmp(text, want) : !sec;
        int has401 = !!cJSON_GetObjectItemCaseSensitive(at(op, "responses"), "401");
        if (!ok || has401 == srv_route_is_public((enum srv_route)i)) {
            print_error("openapi.json: %s %s: security %s, %s 401; routes.c says %s\n",
                        srv_route_methods[i], srv_route_patterns[i], text ? text : "(default)",
                        has401 ? "with" : "without",
                        want ? want : "an access key when api_keys_file is set");
            bad++;
        }
        free(text);
    }
    assert_int_equal(bad, 0);
}

/* Every $ref points at something that exists. */
static int refs_ok(const cJSON *v)
{
    int bad = 0;
    for (const cJSON *c = v->child; c; c = c->next) {
        if (c->string && !strcmp(c->string, "$ref") && cJSON_IsString(c)) {
            const char *r = c->valuestring;
            const cJSON *t = doc;
            if (strncmp(r, "#/", 2)) {
                print_error("openapi.json: external $ref %s\n", r);
                bad++;
                continue;
            }
            char buf[256];
            snprintf(buf, sizeof buf, "%s", r + 2);
            for (char *save = NULL, *tok = strtok_r(buf, "/", &save); tok && t;
                 tok = strtok_r(NULL, "/", &save))
                t = cJSON_GetObjectItemCaseSensitive(t, tok);
            if (!t) {
                print_error("openapi.json: $ref %s names nothing\n", r);
                bad++;
            }
        }
        bad += refs_ok(c);
    }
    return bad;
}

static void refs_resolve(void **state)
{
    (void)state;
    assert_int_equal(refs_ok(doc), 0);
}

int main(void)
{
    char path[512];
    snprintf(path, sizeof path, "%s/web/openapi.json", t_root());
    char *text = t_read_file(path, NULL);
    if (!text || !(doc = cJSON_Parse(text))) {
        fprintf(stderr, "test_openapi: cannot read %s as JSON\n", path);
        return 1;
    }
    free(text);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(version_is_relud),
        cmocka_unit_test(paths_are_the_route_table),
        cmocka_unit_test(layer_schemas),
        cmocka_unit_test(loss_schemas),
        cmocka_unit_test(statuses_are_the_status_table),
        cmocka_unit_test(refs_resolve),
        cmocka_unit_test(security_is_the_route_table),
    };
    int rc =
        cmocka_run_group_tests_name("openapi.json against the code's tables", tests, NULL, NULL);
    cJSON_Delete(doc);
    return rc;
}
