/* req.h - the request the process tests send, and what must arrive once
 * the built-in rules fixed it (doubled /v1). */
#ifndef KF_HARD_REQ_H
#define KF_HARD_REQ_H

#define HARD_BODY "{\"model\":\"kimi-for-coding\",\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}]}"
#define HARD_HEAD_REST "Host: api.kimi.com\r\nContent-Type: application/json\r\n" \
    "x-api-key: sk-kimi-HARDSECRET-51b2\r\nContent-Length: 71\r\n\r\n" HARD_BODY
#define HARD_REQ "POST /coding/v1/v1/messages HTTP/1.1\r\n" HARD_HEAD_REST
#define HARD_WANT "POST /coding/v1/messages HTTP/1.1\r\n" HARD_HEAD_REST

#endif
