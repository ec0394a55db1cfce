/* Test helpers for files: temporary (flat) directories, written and checked files.
 * The asserting helpers use cmocka, like the tests that call them. */
#ifndef RELUD_TEST_FS_H
#define RELUD_TEST_FS_H

#include <stddef.h>

/* mkdtemp "/tmp/relud-<tag>-XXXXXX" into out; with src (relative to t_root() or absolute)
 * a copy of src's regular top-level files, dotfiles left out. 0 on success, -1 otherwise
 * (usable from group setups). */
int t_tmp_copy(char *out, size_t len, const char *tag, const char *src);
/* Removes a flat directory and the files in it; a missing or empty path is a no-op. */
void t_rm_dir(const char *dir);
/* dir/name := data (asserts). */
void t_write_file(const char *dir, const char *name, const void *data, size_t len);
void t_write_str(const char *dir, const char *name, const char *s);
int t_file_exists(const char *dir, const char *name);
/* Reads a whole file (malloc'd, NUL-terminated; *len without the NUL, len may be NULL)
 * or NULL. */
char *t_read_file(const char *path, size_t *len);

#endif
