/* send-batch: several messages over one connection (keep-alive), the way
 * an application sending reports in a loop should.
 * usage: send-batch RELAY PORT CAFILE USER PASSWORD FROM TO COUNT
 * The password comes from the command line only because this is an example;
 * a real program reads it from a file or a credential store. */
#include <hato.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void show(void *user, hato_log_level level, const char *line)
{
    (void)user;
    if (level <= HATO_LOG_DEBUG)
        fprintf(stderr, "send-batch: %s\n", line);
}

int main(int argc, char **argv)
{
    if (argc != 9) {
        fprintf(stderr, "usage: send-batch relay port cafile user password from to count\n");
        return 64;
    }
    hato_options *o = hato_options_new();
    hato_options_set_relay(o, argv[1], (uint16_t)strtoul(argv[2], NULL, 10));
    hato_options_set_ca_file(o, argv[3]);
    hato_options_set_credentials(o, argv[4], argv[5]);
    hato_options_set_keep_alive(o, 30 * 1000);
    hato_options_set_log(o, show, NULL, HATO_LOG_DEBUG);
    hato_client *c = hato_client_new(o);
    int failed = 0, count = (int)strtol(argv[8], NULL, 10);
    for (int i = 1; i <= count; i++) {
        char text[256];
        snprintf(text, sizeof text, "Subject: report %d of %d\nMessage-ID: <batch.%d.%s>\n\nreport %d\n",
                 i, count, i, argv[6], i);
        hato_message *m = hato_message_new();
        hato_message_set_sender(m, argv[6]);
        hato_message_add_recipient(m, argv[7]);
        hato_message_set_content(m, text, strlen(text));
        if (hato_client_send(c, m) != HATO_OK) {
            fprintf(stderr, "send-batch: message %d: %s\n", i,
                    hato_error_message(hato_client_error(c)));
            failed++;
        }
        hato_message_free(m);
    }
    hato_client_free(c); /* QUIT on the idle connection */
    hato_options_free(o);
    return failed ? 75 : 0;
}
