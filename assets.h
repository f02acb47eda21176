/* assets.h - files built into the binary (no files needed at run time:
 * scratch images and air-gapped hosts; the binary is shipped alone, so its
 * licence notices travel inside it). */
#ifndef KB_ASSETS_H
#define KB_ASSETS_H
#include <stddef.h>

struct asset {
	const unsigned char *data;
	size_t len;
};

struct asset asset_console(void);   /* web/console.html, served at / */
struct asset asset_docs(void);      /* web/docs.html, served at /docs */
struct asset asset_license(void);   /* LICENSE, first half of --licenses */
struct asset asset_notices(void);   /* THIRD-PARTY-NOTICES, the second half */
#endif
