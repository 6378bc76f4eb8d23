/*
 * worker.c - test worker for the sandbox supervisor's framed protocol.
 *
 * Protocol (version 1):
 *   A frame is a 4-byte little-endian unsigned length N followed by N bytes
 *   of UTF-8 JSON. stdout carries only frames; diagnostics go to stderr.
 *
 *   On start the worker writes {"type":"hello","protocol":1}.
 *     worker --hello-version <n>  announces protocol <n> instead.
 *     worker --no-hello           writes nothing, reads stdin until EOF.
 *
 *   Then it loops reading request frames laid out exactly as
 *     {"type":"request","id":<unsigned>,"body":<json>}
 *   (no general JSON parsing: fixed prefix, digits, ',"body":', and the
 *   body is everything up to the final '}'). EOF before a frame -> exit 0,
 *   EOF inside a frame -> exit 3, frame larger than 64 MiB -> exit 4,
 *   write failure -> exit 5. A frame not matching the layout gets
 *     {"type":"response","id":<id or 0>,"error":{"kind":"bad_request",...}}
 *
 *   The body selects a command via strstr for "cmd":"<name>":
 *     echo (default) -> {"type":"response","id":<id>,"ok":<body>}
 *     fail      -> error {"kind":"user","message":"failed on purpose"}
 *     spin      -> busy loop forever
 *     sleep     -> sleep 60 s, then echo
 *     nap       -> sleep 1200 ms, then echo (a request that takes a known time)
 *     crash     -> die of SIGSEGV
 *     exit      -> exit(7) without responding
 *     garbage   -> a 5-byte frame "nope!" (invalid JSON), then continue
 *     huge      -> header announcing 0x7fffffff bytes, 1 MiB of 'x', then
 *                  block reading stdin until EOF
 *     truncated -> header announcing 100 bytes, 10 bytes of text, exit(0)
 *     alloc     -> malloc+memset 1 MiB chunks forever, never respond
 *     stderr    -> 100 KiB of 'e' to stderr, then echo
 *     pid       -> ok {"pid":<getpid()>,"count":<requests served incl. this>}
 *     wrong-id  -> ok <body>, but under the id <id + 1>
 *     neither   -> a response with neither "ok" nor "error"
 *
 * Only read(2)/write(2) on fds 0/1/2 are used for I/O (no stdio buffering).
 */
#include <errno.h>
#include <limits.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define MAX_FRAME (64u * 1024u * 1024u)
#define MIB (1024u * 1024u)

/* Read exactly n bytes unless EOF; returns bytes read, or -1 on error. */
static ssize_t read_full(int fd, void *buf, size_t n)
{
    size_t got = 0;
    while (got < n) {
        ssize_t r = read(fd, (char *)buf + got, n - got);
        if (r < 0) {
            if (errno == EINTR)
                continue;
            return -1;
        }
        if (r == 0)
            break;
        got += (size_t)r;
    }
    return (ssize_t)got;
}

/* Write all n bytes, retrying partial writes and EINTR; exit(5) on failure. */
static void write_all(int fd, const void *buf, size_t n)
{
    size_t done = 0;
    while (done < n) {
        ssize_t w = write(fd, (const char *)buf + done, n - done);
        if (w < 0) {
            if (errno == EINTR)
                continue;
            if (fd == 2)
                return; /* losing diagnostics is not fatal */
            _exit(5);
        }
        done += (size_t)w;
    }
}

static void put_le32(unsigned char *p, uint32_t v)
{
    p[0] = (unsigned char)(v & 0xff);
    p[1] = (unsigned char)((v >> 8) & 0xff);
    p[2] = (unsigned char)((v >> 16) & 0xff);
    p[3] = (unsigned char)((v >> 24) & 0xff);
}

/* Send one frame whose payload is a+b+c, with a single write where possible.
 * `announce` is the length put in the header (normally alen+blen+clen). */
static void send_raw(uint32_t announce, const char *a, size_t alen,
                     const char *b, size_t blen, const char *c, size_t clen)
{
    size_t total = 4 + alen + blen + clen;
    unsigned char *buf = malloc(total);
    if (!buf) {
        write_all(2, "worker: out of memory\n", 22);
        _exit(6);
    }
    put_le32(buf, announce);
    if (alen) memcpy(buf + 4, a, alen);
    if (blen) memcpy(buf + 4 + alen, b, blen);
    if (clen) memcpy(buf + 4 + alen + blen, c, clen);
    write_all(1, buf, total);
    free(buf);
}

static void send_str(const char *s)
{
    size_t n = strlen(s);
    send_raw((uint32_t)n, s, n, NULL, 0, NULL, 0);
}

/* {"type":"response","id":<id>,"ok":<body>} with body copied verbatim. */
static void send_ok(unsigned long long id, const char *body, size_t blen)
{
    char pre[96];
    int n = snprintf(pre, sizeof pre, "{\"type\":\"response\",\"id\":%llu,\"ok\":", id);
    send_raw((uint32_t)((size_t)n + blen + 1), pre, (size_t)n, body, blen, "}", 1);
}

static void send_error(unsigned long long id, const char *kind, const char *msg)
{
    char out[256];
    snprintf(out, sizeof out,
             "{\"type\":\"response\",\"id\":%llu,\"error\":{\"kind\":\"%s\",\"message\":\"%s\"}}",
             id, kind, msg);
    send_str(out);
}

/* Does the body contain "cmd":"<name>"? */
static int has_cmd(const char *body, const char *name)
{
    char pat[64];
    snprintf(pat, sizeof pat, "\"cmd\":\"%s\"", name);
    return strstr(body, pat) != NULL;
}

/* Read stdin until EOF (or error), then exit 0. */
static void drain_stdin_and_exit(void)
{
    char buf[4096];
    for (;;) {
        ssize_t r = read(0, buf, sizeof buf);
        if (r == 0 || (r < 0 && errno != EINTR))
            exit(0);
    }
}

int main(int argc, char **argv)
{
    static const char prefix[] = "{\"type\":\"request\",\"id\":";
    static const char body_key[] = ",\"body\":";
    unsigned long count = 0;

    /* A vanished supervisor should give a write error (exit 5), not SIGPIPE. */
    signal(SIGPIPE, SIG_IGN);

    if (argc >= 2 && strcmp(argv[1], "--no-hello") == 0) {
        drain_stdin_and_exit();
    } else if (argc >= 3 && strcmp(argv[1], "--hello-version") == 0) {
        char hello[64];
        snprintf(hello, sizeof hello, "{\"type\":\"hello\",\"protocol\":%lld}",
                 strtoll(argv[2], NULL, 10));
        send_str(hello);
    } else {
        send_str("{\"type\":\"hello\",\"protocol\":1}");
    }

    for (;;) {
        unsigned char hdr[4];
        ssize_t r = read_full(0, hdr, 4);
        if (r == 0)
            exit(0);               /* clean EOF between frames */
        if (r != 4)
            exit(3);               /* EOF or error inside the header */
        uint32_t len = (uint32_t)hdr[0] | (uint32_t)hdr[1] << 8 |
                       (uint32_t)hdr[2] << 16 | (uint32_t)hdr[3] << 24;
        if (len > MAX_FRAME)
            exit(4);

        char *req = malloc((size_t)len + 1);
        if (!req)
            exit(6);
        if (read_full(0, req, len) != (ssize_t)len)
            exit(3);               /* EOF or error inside the payload */
        req[len] = '\0';

        /* --- fixed-layout parse: prefix, digits, ,"body":, body, '}' --- */
        unsigned long long id = 0;
        size_t plen = sizeof prefix - 1, klen = sizeof body_key - 1;
        size_t pos = plen, ndig = 0;
        int bad = 0;
        if (len < plen || memcmp(req, prefix, plen) != 0)
            bad = 1;
        while (!bad && pos < len && req[pos] >= '0' && req[pos] <= '9') {
            unsigned d = (unsigned)(req[pos] - '0');
            if (id > (ULLONG_MAX - d) / 10) { bad = 1; break; }
            id = id * 10 + d;
            pos++, ndig++;
        }
        if (!bad && (ndig == 0 || len - pos < klen + 2 ||
                     memcmp(req + pos, body_key, klen) != 0 || req[len - 1] != '}'))
            bad = 1;
        if (bad) {
            send_error(id, "bad_request", "request does not match the fixed layout");
            free(req);
            continue;
        }
        char *body = req + pos + klen;
        size_t blen = (size_t)(req + len - 1 - body);
        body[blen] = '\0';         /* overwrite the final '}' for strstr */
        count++;

        /* --- dispatch on "cmd" --- */
        if (has_cmd(body, "fail")) {
            send_error(id, "user", "failed on purpose");
        } else if (has_cmd(body, "spin")) {
            volatile unsigned long spin = 0;
            for (;;)
                spin++;
        } else if (has_cmd(body, "sleep")) {
            unsigned left = 60;
            while ((left = sleep(left)) > 0)
                ;
            send_ok(id, body, blen);
        } else if (has_cmd(body, "nap")) {
            struct timespec left = {1, 200 * 1000 * 1000};
            while (nanosleep(&left, &left) != 0 && errno == EINTR)
                ;
            send_ok(id, body, blen);
        } else if (has_cmd(body, "crash")) {
            volatile int *volatile p = NULL; /* opaque to the optimiser */
            signal(SIGSEGV, SIG_DFL);
            *p = 1;
            raise(SIGSEGV);                  /* not reached */
        } else if (has_cmd(body, "exit")) {
            exit(7);
        } else if (has_cmd(body, "garbage")) {
            send_raw(5, "nope!", 5, NULL, 0, NULL, 0);
        } else if (has_cmd(body, "huge")) {
            char *xs = malloc(MIB);
            if (!xs)
                exit(6);
            memset(xs, 'x', MIB);
            send_raw(0x7fffffffu, xs, MIB, NULL, 0, NULL, 0);
            free(xs);
            drain_stdin_and_exit();
        } else if (has_cmd(body, "truncated")) {
            send_raw(100, "{\"type\":\"r", 10, NULL, 0, NULL, 0);
            exit(0);
        } else if (has_cmd(body, "alloc")) {
            for (;;) {
                char *chunk = malloc(MIB);
                if (chunk)
                    memset(chunk, 'a', MIB); /* touch it so it is resident */
                else
                    sleep(1);                /* address-space limit: wait to be killed */
            }
        } else if (has_cmd(body, "stderr")) {
            char *es = malloc(100 * 1024);
            if (!es)
                exit(6);
            memset(es, 'e', 100 * 1024);
            write_all(2, es, 100 * 1024);
            free(es);
            send_ok(id, body, blen);
        } else if (has_cmd(body, "wrong-id")) {
            send_ok(id + 1, body, blen);
        } else if (has_cmd(body, "neither")) {
            char out[64];
            snprintf(out, sizeof out, "{\"type\":\"response\",\"id\":%llu}", id);
            send_str(out);
        } else if (has_cmd(body, "pid")) {
            char out[128];
            snprintf(out, sizeof out,
                     "{\"type\":\"response\",\"id\":%llu,\"ok\":{\"pid\":%ld,\"count\":%lu}}",
                     id, (long)getpid(), count);
            send_str(out);
        } else {
            send_ok(id, body, blen);  /* "echo" and the default */
        }
        free(req);
    }
}
