/* assets.h - files from web/ built into the binary (no files needed at run
 * time: scratch images and air-gapped hosts). */
#ifndef KB_ASSETS_H
#define KB_ASSETS_H
#include <stddef.h>

struct asset {
	const unsigned char *data;
	size_t len;
};

struct asset asset_console(void);   /* web/console.html, served at / */
struct asset asset_docs(void);      /* web/docs.html, served at /docs */
#endif
