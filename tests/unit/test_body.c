/* The DATA encoder: CRLF, dot-stuffing and the end of data, whatever the
 * split of the content into pieces. */
#include <stdlib.h>

#include "check.h"
#include "message/body.h"

/* Encodes src cut into pieces of at most `piece` bytes, plus the end. */
static char *encode_as(body_mode mode, const char *src, size_t piece)
{
    size_t n = strlen(src);
    char *out = malloc(body_max_output(n) + 8);
    body_encoder e;
    body_init(&e, mode);
    size_t used = 0;
    for (size_t i = 0; i < n; i += piece) {
        size_t k = n - i < piece ? n - i : piece;
        used += body_encode(&e, src + i, k, out + used);
    }
    used += body_finish(&e, out + used);
    out[used] = '\0';
    return out;
}

static void check_mode(body_mode mode, const char *src, const char *want)
{
    size_t n = strlen(src);
    for (size_t piece = 1; piece <= n + 1; piece++) {
        char *got = encode_as(mode, src, piece);
        CHECK_STR(got, want);
        free(got);
    }
}

static void check_all_splits(const char *src, const char *want)
{
    check_mode(BODY_DATA, src, want);
}

/* Whether 8-bit bytes were seen, wherever they fall in the 8-byte words. */
static void check_8bit(void)
{
    char buf[40];
    memset(buf, 'a', sizeof buf);
    CHECK(!body_has_8bit(buf, sizeof buf));
    for (size_t i = 0; i < sizeof buf; i++) {
        buf[i] = (char)0x80;
        CHECK(body_has_8bit(buf, sizeof buf));
        CHECK(!body_has_8bit(buf, i));
        buf[i] = 'a';
    }
    body_encoder e;
    char out[16];
    body_init(&e, BODY_CHUNK);
    body_encode(&e, "plain\n", 6, out);
    CHECK(!e.eight_bit);
    body_encode(&e, "\xc3\xa9\n", 3, out);
    CHECK(e.eight_bit);
}

int main(void)
{
    check_all_splits("", ".\r\n");
    check_all_splits("a\n", "a\r\n.\r\n");
    check_all_splits("a\r\n", "a\r\n.\r\n");
    /* No final newline: one is added before the dot. */
    check_all_splits("no newline", "no newline\r\n.\r\n");
    /* Dot-stuffing at every line start, first line included. */
    check_all_splits(".\n..\n.x\nx.\n", "..\r\n...\r\n..x\r\nx.\r\n.\r\n");
    check_all_splits("a\r\n.\r\n", "a\r\n..\r\n.\r\n");
    /* Mixed line ends; a lone CR is kept and does not start a line. */
    check_all_splits("a\nb\r\nc\rd\n", "a\r\nb\r\nc\rd\r\n.\r\n");
    check_all_splits("x\r", "x\r\n.\r\n");
    check_all_splits("\r.\n", "\r.\r\n.\r\n");
    /* Blank lines and 8-bit bytes pass through. */
    check_all_splits("h: v\n\n\xe3\x81\x82\n", "h: v\r\n\r\n\xe3\x81\x82\r\n.\r\n");
    /* BDAT chunks: CRLF, no dot-stuffing, no end-of-data line. */
    check_mode(BODY_CHUNK, "", "");
    check_mode(BODY_CHUNK, ".\n..x\n", ".\r\n..x\r\n");
    check_mode(BODY_CHUNK, "no newline", "no newline\r\n");
    check_mode(BODY_CHUNK, "a\r\nb\rc\n", "a\r\nb\rc\r\n");
    /* BINARYMIME: every byte as given, nothing added. */
    check_mode(BODY_BINARY, "a\nb\r.\n\xff", "a\nb\r.\n\xff");
    check_mode(BODY_BINARY, "no newline", "no newline");
    check_8bit();
    return check_finish("body");
}
