/* assets.c - embeds web/console.html, web/docs.html, LICENSE and
 * THIRD-PARTY-NOTICES with the assembler's .incbin, so the build needs no
 * generator and nothing generated is kept. Paths are relative to the
 * repository root, where make runs the compiler. */
#include "assets.h"

#define EMBED(sym, path)                                        \
	__asm__(".section .rodata\n"                            \
		".balign 16\n"                                  \
		".global " #sym "_start\n"                      \
		#sym "_start:\n"                                \
		".incbin \"" path "\"\n"                        \
		".global " #sym "_end\n"                        \
		#sym "_end:\n"                                  \
		".byte 0\n"                                     \
		".previous\n");                                 \
	extern const unsigned char sym##_start[], sym##_end[];

EMBED(kb_console, "web/console.html")
EMBED(kb_docs, "web/docs.html")
EMBED(kb_license, "LICENSE")
EMBED(kb_notices, "THIRD-PARTY-NOTICES")

struct asset asset_console(void)
{
	return (struct asset){ kb_console_start, (size_t)(kb_console_end - kb_console_start) };
}

struct asset asset_docs(void)
{
	return (struct asset){ kb_docs_start, (size_t)(kb_docs_end - kb_docs_start) };
}

struct asset asset_license(void)
{
	return (struct asset){ kb_license_start, (size_t)(kb_license_end - kb_license_start) };
}

struct asset asset_notices(void)
{
	return (struct asset){ kb_notices_start, (size_t)(kb_notices_end - kb_notices_start) };
}
