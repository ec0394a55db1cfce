/* The HTTP statuses relud answers: one list, with the error class metrics label them by,
 * and the map from the core's statuses. */
#ifndef RELUD_STATUS_H
#define RELUD_STATUS_H

#include "core/nn.h"

/* X(code, reason, error class label for metrics) */
#define SRV_STATUS_LIST(X)                                     \
    X(200, "OK", "ok")                                         \
    X(201, "Created", "ok")                                    \
    X(202, "Accepted", "ok")                                   \
    X(204, "No Content", "ok")                                 \
    X(304, "Not Modified", "ok")                               \
    X(400, "Bad Request", "invalid_request")                   \
    X(401, "Unauthorized", "unauthorized")                     \
    X(403, "Forbidden", "forbidden")                           \
    X(404, "Not Found", "not_found")                           \
    X(405, "Method Not Allowed", "method_not_allowed")         \
    X(408, "Request Timeout", "timeout")                       \
    X(413, "Content Too Large", "too_large")                   \
    X(415, "Unsupported Media Type", "unsupported_media_type") \
    X(422, "Unprocessable Content", "non_finite")              \
    X(499, "Client Closed Request", "client_closed")           \
    X(500, "Internal Server Error", "internal")                \
    X(501, "Not Implemented", "not_implemented")               \
    X(503, "Service Unavailable", "unavailable")

enum srv_status_slot {
#define X(code, reason, cls) SRV_S_##code,
    SRV_STATUS_LIST(X)
#undef X
        SRV_S_OTHER, /* a code not in the list: counted as code="other", never as 500 */
    SRV_S_COUNT
};

int srv_status_slot(unsigned code); /* slot, or SRV_S_OTHER for a code not in the list */
unsigned srv_status_code(int slot); /* 0 for SRV_S_OTHER */
const char *srv_status_class(int slot);
/* "200", or "other" */
const char *srv_status_label(int slot);
/* The HTTP status for a status: EINVAL 400, ENOTFOUND 404, ETOOBIG 413, ENONFINITE 422,
 * EIO 500, ENOMEM, ECANCELED and EUNAVAILABLE 503. */
unsigned srv_status_from_nn(enum nn_status st);

#endif
