/* kafka.c - placeholder until the librdkafka consumer lands: Kafka is
 * reported down and no records flow. */
#include "kafka.h"

#include <stdio.h>
#include <sys/eventfd.h>

int kafka_start(const struct config *cfg, char *err, size_t errlen)
{
	(void)cfg; (void)err; (void)errlen;
	return eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);   /* never signalled */
}
int kafka_pending(void) { return 0; }
void kafka_service(void) {}
void kafka_stop(void) {}
void kafka_print_version(void) { printf("librdkafka (not linked yet)\n"); }
int kafka_up(void) { return 0; }
int kafka_ready(void) { return 0; }
