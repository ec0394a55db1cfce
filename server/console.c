/* The web console and the OpenAPI document: GET /, GET /docs (the console's page), GET
 * /console/{name} (its scripts and styles) and GET /openapi.json. The files in web/ are
 * compiled into this object by the assembler's .incbin (the Makefile makes this object
 * depend on them), so the binary alone serves them: no files at run time, nothing
 * generated. Each reply carries a strong ETag (a hash of the file) and Cache-Control:
 * no-cache, so a browser revalidates and gets a 304 while the binary is the same. */
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "server/srv.h"

/* X(ID, name under /console/ or "" for none, file, Content-Type) */
#define SRV_ASSET_LIST(X)                                                       \
    X(INDEX, "", "web/index.html", "text/html; charset=utf-8")                  \
    X(APP, "app.js", "web/console/app.js", "text/javascript; charset=utf-8")    \
    X(PLOT, "plot.js", "web/console/plot.js", "text/javascript; charset=utf-8") \
    X(STYLE, "style.css", "web/console/style.css", "text/css; charset=utf-8")   \
    X(ICON, "favicon.svg", "web/console/favicon.svg", "image/svg+xml")          \
    X(OPENAPI, "", "web/openapi.json", "application/json")

/* Each file between the symbols relud_web_ID and relud_web_ID_end, in .rodata. */
#define INCBIN(ID, name, file, ctype)                                                 \
    ".balign 16\n.globl relud_web_" #ID "\n.hidden relud_web_" #ID "\nrelud_web_" #ID \
    ":\n.incbin \"" file "\"\n.globl relud_web_" #ID "_end\n.hidden relud_web_" #ID   \
    "_end\nrelud_web_" #ID "_end:\n.byte 0\n"
__asm__(".pushsection .rodata\n" SRV_ASSET_LIST(INCBIN) ".popsection\n");
#undef INCBIN

#define X(ID, name, file, ctype)                                              \
    extern const char relud_web_##ID[] __attribute__((visibility("hidden"))); \
    extern const char relud_web_##ID##_end[] __attribute__((visibility("hidden")));
SRV_ASSET_LIST(X)
#undef X

enum asset {
#define X(ID, name, file, ctype) ASSET_##ID,
    SRV_ASSET_LIST(X)
#undef X
        ASSET_COUNT
};

struct asset_info {
    const char *name, *ctype;
    const char *data, *end;
};

static const struct asset_info assets[ASSET_COUNT] = {
#define X(ID, name, file, ctype) [ASSET_##ID] = {name, ctype, relud_web_##ID, relud_web_##ID##_end},
    SRV_ASSET_LIST(X)
#undef X
};

/* "\"<16 hex digits>\"": FNV-1a 64 of the file, computed once. */
static char etags[ASSET_COUNT][20];
static pthread_once_t etags_once = PTHREAD_ONCE_INIT;

static void etags_init(void)
{
    for (int i = 0; i < ASSET_COUNT; i++) {
        uint64_t h = 0xcbf29ce484222325ULL;
        for (const char *p = assets[i].data; p < assets[i].end; p++)
            h = (h ^ (unsigned char)*p) * 0x100000001b3ULL;
        snprintf(etags[i], sizeof etags[i], "\"%016llx\"", (unsigned long long)h);
    }
}

/* 1 when If-None-Match (a list of entity tags, or *) names etag; weak tags compare by
 * their opaque part (RFC 9110 section 13.1.2: the weak comparison). */
static int etag_matches(const char *inm, const char *etag)
{
    size_t n = strlen(etag);
    for (const char *p = inm; *p;) {
        while (*p == ' ' || *p == '\t' || *p == ',')
            p++;
        if (*p == '*')
            return 1;
        if (p[0] == 'W' && p[1] == '/')
            p += 2;
        const char *e = p;
        while (*e && *e != ',')
            e++;
        size_t len = (size_t)(e - p);
        while (len && (p[len - 1] == ' ' || p[len - 1] == '\t'))
            len--;
        if (len == n && !memcmp(p, etag, n))
            return 1;
        p = e;
    }
    return 0;
}

/* The console page may talk to relud itself only (another API base: serve web/ from that
 * origin), and runs no inline script or style. */
#define CONSOLE_CSP "default-src 'self'; img-src 'self' data:; frame-ancestors 'none'"

static void serve(struct srv_req *req, struct srv_reply *rep, enum asset a)
{
    pthread_once(&etags_once, etags_init);
    const struct asset_info *ai = &assets[a];
    const char *inm = srv_req_header(req, "If-None-Match");
    int fresh = inm && etag_matches(inm, etags[a]);
    size_t len = fresh ? 0 : (size_t)(ai->end - ai->data);
    char *body = malloc(len + 1);
    if (!body) {
        srv_reply_error(rep, 503, "out of memory for a %zu-byte file", len);
        srv_reply_header(rep, "Retry-After", "1");
        return;
    }
    memcpy(body, ai->data, len);
    srv_reply_body(rep, fresh ? 304 : 200, ai->ctype, body, len);
    srv_reply_header(rep, "ETag", "%s", etags[a]);
    srv_reply_header(rep, "Cache-Control", "no-cache");
    srv_reply_header(rep, "X-Content-Type-Options", "nosniff");
    if (a == ASSET_INDEX)
        srv_reply_header(rep, "Content-Security-Policy", CONSOLE_CSP);
}

void srv_h_console(struct srv_req *req, struct srv_reply *rep) { serve(req, rep, ASSET_INDEX); }

/* The API reference is a page of the console (it renders /openapi.json). */
void srv_h_docs(struct srv_req *req, struct srv_reply *rep) { serve(req, rep, ASSET_INDEX); }

void srv_h_openapi(struct srv_req *req, struct srv_reply *rep) { serve(req, rep, ASSET_OPENAPI); }

void srv_h_console_file(struct srv_req *req, struct srv_reply *rep)
{
    for (int i = 0; i < ASSET_COUNT; i++)
        if (assets[i].name[0] && !strcmp(assets[i].name, req->name)) {
            serve(req, rep, (enum asset)i);
            return;
        }
    srv_reply_error(rep, 404, "no such console file: %s", req->name);
}
