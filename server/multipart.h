/* multipart/form-data bodies (RFC 7578 on RFC 2046's framing), as curl -F sends them:
 *
 *   Content-Type: multipart/form-data; boundary=XYZ
 *
 *   --XYZ\r\n
 *   Content-Disposition: form-data; name="model"; filename="m.json"\r\n
 *   Content-Type: application/json\r\n
 *   \r\n
 *   <bytes>\r\n
 *   --XYZ\r\n
 *   ...
 *   --XYZ--\r\n
 *
 * A strict reader of a body already in memory: the body starts with the first delimiter
 * (no preamble), every part has a Content-Disposition of form-data with a name, a part's
 * bytes end at the next "\r\n--XYZ", and the close delimiter ends the body (an epilogue
 * after it is ignored, as RFC 2046 says). Part contents are views into the body, nothing is
 * copied. Messages name the part ("part 2 (\"weights\"): ...") or the framing fault. */
#ifndef RELUD_MULTIPART_H
#define RELUD_MULTIPART_H

#include <stddef.h>

#include "core/nn.h"

#define SRV_MP_MAX_PARTS 8
#define SRV_MP_NAME 64 /* a part's name or file name, truncated for messages past this */

struct srv_mp_part {
    char name[SRV_MP_NAME];     /* Content-Disposition's name */
    char filename[SRV_MP_NAME]; /* its filename, or "" */
    const char *data;           /* into the body */
    size_t len;
};

/* The boundary of a Content-Type value "multipart/form-data; boundary=..." (token or quoted,
 * 1 to 70 characters) into buf (71 bytes). 0 when it is multipart/form-data with a valid
 * boundary; else NN_EINVAL with the reason. */
enum nn_status srv_mp_boundary(const char *content_type, char buf[71], struct nn_err *err);

/* Splits body into its parts (at most max parts, SRV_MP_MAX_PARTS at most). *n gets the
 * count. NN_EINVAL naming the fault. */
enum nn_status srv_mp_parse(const char *boundary, const char *body, size_t len,
                            struct srv_mp_part *parts, int max, int *n, struct nn_err *err);

#endif
