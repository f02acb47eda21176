/* demo.h - the --demo mock Kafka cluster and its market-data producer.
 * Only started with --demo; it does not consume (the live consumer of
 * kafka.c reads the mock like any Kafka). */
#ifndef KB_DEMO_H
#define KB_DEMO_H
#include <stddef.h>

#include "config.h"

/* Starts the mock cluster, creates the demo topics and logs the bootstrap
 * address. Returns that address (valid until demo_stop), or NULL with one
 * line in err. */
const char *demo_start(const struct config *cfg, char *err, size_t errlen);
/* Produces the records that are due (call when demo_timeout_ms() is 0). */
void demo_tick(void);
/* ms until a record is due, -1 when the producer is off. */
int  demo_timeout_ms(void);
/* Flushes briefly and destroys the producer and the mock cluster. */
void demo_stop(void);
#endif
