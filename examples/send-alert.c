/* send-alert: the smallest complete use of libhato.
 * usage: send-alert RELAY PORT USER PASSWORD FROM TO */
#include <hato.h>
#include <stdio.h>
#include <stdlib.h>

int main(int argc, char **argv)
{
    if (argc != 7) {
        fprintf(stderr, "usage: send-alert relay port user password from to\n");
        return 64;
    }
    static const char text[] = "Subject: disk almost full\n\n/var is at 93%.\n";
    hato_options *o = hato_options_new();
    hato_options_set_relay(o, argv[1], (uint16_t)strtoul(argv[2], NULL, 10));
    hato_options_set_credentials(o, argv[3], argv[4]);
    hato_message *m = hato_message_new();
    hato_message_set_sender(m, argv[5]);
    hato_message_add_recipient(m, argv[6]);
    hato_message_set_content(m, text, sizeof text - 1);
    hato_client *c = hato_client_new(o);
    hato_code rc = hato_client_send(c, m);
    if (rc != HATO_OK)
        fprintf(stderr, "send-alert: %s\n", hato_error_message(hato_client_error(c)));
    hato_client_free(c);
    hato_message_free(m);
    hato_options_free(o);
    return rc == HATO_OK ? 0 : 75;
}
