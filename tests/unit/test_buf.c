/* The bounded byte buffer: its ceiling holds, consuming and reusing keep
 * the bytes in order, and a refused append changes nothing. */
#include "check.h"
#include "util/buf.h"

int main(void)
{
    buf b;
    buf_init(&b, 16);
    CHECK(buf_append_str(&b, "0123456789"));
    CHECK_INT(buf_size(&b), 10);
    /* 10 + 7 > 16: refused whole. */
    CHECK(!buf_append_str(&b, "abcdefg"));
    CHECK_INT(buf_size(&b), 10);
    buf_consume(&b, 4);
    CHECK_INT(buf_size(&b), 6);
    CHECK(memcmp(buf_head(&b), "456789", 6) == 0);
    /* Room again after consuming: 6 + 10 = 16 fits, moved to the front. */
    CHECK(buf_append_str(&b, "abcdefghij"));
    CHECK_INT(buf_size(&b), 16);
    CHECK(memcmp(buf_head(&b), "456789abcdefghij", 16) == 0);
    CHECK(buf_reserve(&b, 1) == NULL);
    buf_consume(&b, 100);
    CHECK_INT(buf_size(&b), 0);
    CHECK(buf_appendf(&b, "%d-%s", 42, "x"));
    CHECK(memcmp(buf_head(&b), "42-x", 4) == 0 && buf_size(&b) == 4);
    /* A formatted append past the ceiling is refused too. */
    CHECK(!buf_appendf(&b, "%s", "this is far longer than sixteen"));
    CHECK_INT(buf_size(&b), 4);
    buf_free_wipe(&b);
    CHECK(b.data == NULL && buf_size(&b) == 0);

    /* No ceiling: grows as needed. */
    buf_init(&b, 0);
    for (int i = 0; i < 10000; i++)
        CHECK(buf_append(&b, "abc", 3));
    CHECK_INT(buf_size(&b), 30000);
    buf_free(&b);
    return check_finish("buf");
}
