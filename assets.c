/* assets.c - embeds web/console.html and web/docs.html with the assembler's
 * .incbin, so the build needs no generator and nothing generated is kept.
 * Paths are relative to the repository root, where make runs the compiler. */
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

struct asset asset_console(void)
{
	return (struct asset){ kb_console_start, (size_t)(kb_console_end - kb_console_start) };
}

struct asset asset_docs(void)
{
	return (struct asset){ kb_docs_start, (size_t)(kb_docs_end - kb_docs_start) };
}
