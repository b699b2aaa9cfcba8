/* kf_pump.h - private to the engine: how the pump (kf_pump.c) groups a
 * caller's write into real calls. The public entry points are in
 * kf_stream.h (kf_stream_write, kf_stream_writev, kf_stream_flush).
 *
 * One write stays one write: whatever one caller call hands over (a head
 * and the body bytes behind it, several pipelined requests, a head split
 * over iovecs) leaves in one real call whenever it would have without us:
 *  - output the engine made (a rewritten head, or a head it held back) is
 *    copied into a "stage" (the head buffer's obuf) and the caller's bytes
 *    that follow are appended to it (carriers without a vector call: TLS)
 *    or sent by reference behind it in one vector call (libc writev);
 *  - the stage never grows past one TLS record's plaintext with body bytes
 *    (KF_PUMP_STAGE), so a record boundary falls where it would have;
 *  - a stage that could not be sent completely becomes the stream's pending
 *    output and is retried with the same pointer and length (OpenSSL
 *    refuses a retry with a moved buffer, GnuTLS answers it with the size
 *    of the record it queued);
 *  - caller bytes sent by reference count as taken only once sent: the
 *    stream state they advanced is rolled back to what was really sent.
 */
#ifndef KF_PUMP_H
#define KF_PUMP_H

/* Body bytes are copied into the stage up to one TLS record's plaintext
 * (it is also the largest head buffer the pool keeps, kf_headbuf.c). */
#define KF_PUMP_STAGE 16384

/* Caller pieces sent by reference behind the stage in one vector call.
 * More pieces than this (a writev of many chunks of a chunked body) take
 * another real call. */
#define KF_PUMP_DIRECT_MAX 32

#endif
