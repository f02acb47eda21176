/* filter.c - subscription filters (filter.h). */
#include "filter.h"

#include <stdlib.h>
#include <string.h>

#include "json.h"
#include "json_parse.h"

int filter_add_key(struct filter *f, char *k)
{
	if (!k) return -1;
	for (uint32_t i = 0; i < f->nkeys; i++)
		if (strcmp(f->keys[i], k) == 0) { free(k); return 0; }
	char **nk = realloc(f->keys, (f->nkeys + 1) * sizeof(*nk));
	if (!nk) { free(k); return -1; }
	f->keys = nk;
	f->keys[f->nkeys++] = k;
	return 0;
}

struct filter filter_copy(const struct filter *f, int *failed)
{
	struct filter c = { 0 };
	if (f->type && !(c.type = strdup(f->type))) *failed = 1;
	for (uint32_t i = 0; i < f->nkeys && !*failed; i++)
		if (filter_add_key(&c, strdup(f->keys[i])) < 0) *failed = 1;
	if (f->nfields && !*failed) {
		if (!(c.fields = calloc(f->nfields, sizeof(*c.fields)))) *failed = 1;
		for (uint32_t i = 0; i < f->nfields && !*failed; i++) {
			c.fields[i] = f->fields[i];
			c.fields[i].name = strdup(f->fields[i].name);
			c.fields[i].value = strdup(f->fields[i].value);
			c.nfields++;
			if (!c.fields[i].name || !c.fields[i].value) *failed = 1;
		}
	}
	return c;
}

void filter_free(struct filter *f)
{
	for (uint32_t i = 0; i < f->nkeys; i++) free(f->keys[i]);
	free(f->keys);
	for (uint32_t i = 0; i < f->nfields; i++) {
		free(f->fields[i].name);
		free(f->fields[i].value);
	}
	free(f->fields);
	free(f->type);
	memset(f, 0, sizeof(*f));
}

static int has_key(const struct filter *f, const char *k)
{
	for (uint32_t i = 0; i < f->nkeys; i++)
		if (strcmp(f->keys[i], k) == 0) return 1;
	return 0;
}

static int has_field(const struct filter *f, const struct field_filter *ff)
{
	for (uint32_t i = 0; i < f->nfields; i++)
		if (f->fields[i].any == ff->any && strcmp(f->fields[i].name, ff->name) == 0 &&
		    f->fields[i].value_len == ff->value_len && memcmp(f->fields[i].value, ff->value, ff->value_len) == 0)
			return 1;
	return 0;
}

int filter_restrict(struct filter *f, const struct filter *only)
{
	if (only->keys) {
		if (f->keys) {
			uint32_t kept = 0;
			for (uint32_t i = 0; i < f->nkeys; i++) kept += has_key(only, f->keys[i]);
			if (!kept) return -1;
			for (uint32_t i = 0, w = 0; i < f->nkeys; i++) {
				if (has_key(only, f->keys[i])) f->keys[w++] = f->keys[i];
				else free(f->keys[i]);
			}
			f->nkeys = kept;
		} else {
			if (!only->nkeys) return -1;
			for (uint32_t i = 0; i < only->nkeys; i++)
				if (filter_add_key(f, strdup(only->keys[i])) < 0) return -2;
		}
	}
	for (uint32_t i = 0; i < only->nfields; i++) {
		const struct field_filter *ff = &only->fields[i];
		if (has_field(f, ff)) continue;
		struct field_filter *nf = realloc(f->fields, (f->nfields + 1) * sizeof(*nf));
		if (!nf) return -2;
		f->fields = nf;
		nf[f->nfields] = *ff;
		nf[f->nfields].name = strdup(ff->name);
		nf[f->nfields].value = strdup(ff->value);
		f->nfields++;
		if (!nf[f->nfields - 1].name || !nf[f->nfields - 1].value) return -2;
	}
	return 0;
}

int filter_key_ok(const struct filter *f, const void *key, size_t key_len)
{
	if (!f->keys) return 1;
	if (!key) return 0;
	for (uint32_t i = 0; i < f->nkeys; i++)
		if (strlen(f->keys[i]) == key_len && memcmp(f->keys[i], key, key_len) == 0) return 1;
	return 0;
}

int filter_fields_ok(const struct filter *f, const void *value, size_t value_len, int is_json)
{
	for (uint32_t i = 0; i < f->nfields; i++) {
		const struct field_filter *ff = &f->fields[i];
		const char *v;
		size_t vl;
		/* A field filter needs a JSON object payload with that field. */
		if (!is_json || !json_top_field(value, value_len, ff->name, strlen(ff->name), &v, &vl))
			return 0;
		if (!ff->any && !json_value_eq(v, vl, ff->value, ff->value_len)) return 0;
	}
	return 1;
}

void filter_text(const struct filter *f, struct jbuf *b)
{
	/* Separators no key, name or value holds unescaped. */
	if (f->keys) {
		json_append(b, "k", 1);
		for (uint32_t i = 0; i < f->nkeys; i++) json_str(b, f->keys[i], strlen(f->keys[i]));
	}
	for (uint32_t i = 0; i < f->nfields; i++) {
		json_append(b, f->fields[i].any ? "F" : "f", 1);
		json_cstr(b, f->fields[i].name);
		json_append(b, f->fields[i].value, f->fields[i].value_len);
	}
	if (f->type) {
		json_append(b, "t", 1);
		json_cstr(b, f->type);
	}
}
