/*
 * Tribune plugin SDK for C: helpers for health checks.
 *
 * Include after the generated bindings (`health_check.h`, made by
 * `tribune-c-tool bindgen sdk/wit/v0.1 health-check <dir>`), then define
 *
 *     void exports_tribune_plugin_check_check(
 *         exports_tribune_plugin_check_check_request_t *request,
 *         exports_tribune_plugin_check_check_result_t *ret);
 *
 * Strings from the host are (ptr, len) pairs, not NUL-terminated: use
 * tribune_str_eq / tribune_str_dup. Strings you return must be allocated
 * (tribune_result does it). See sdk/README.md, "Your first plugin in C".
 */
#ifndef TRIBUNE_CHECK_H
#define TRIBUNE_CHECK_H

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define TRIBUNE_SDK_C_VERSION "0.1.0"

#define TRIBUNE_PASSING TRIBUNE_PLUGIN_TYPES_CHECK_STATUS_PASSING
#define TRIBUNE_WARNING TRIBUNE_PLUGIN_TYPES_CHECK_STATUS_WARNING
#define TRIBUNE_CRITICAL TRIBUNE_PLUGIN_TYPES_CHECK_STATUS_CRITICAL

/* A NUL-terminated copy of a host string; free() it. */
static inline char *tribune_str_dup(const health_check_string_t *s) {
  char *out = malloc(s->len + 1);
  if (out == NULL) return NULL;
  memcpy(out, s->ptr, s->len);
  out[s->len] = '\0';
  return out;
}

/* Whether a host string equals a C string. */
static inline int tribune_str_eq(const health_check_string_t *s, const char *c) {
  size_t n = strlen(c);
  return s->len == n && memcmp(s->ptr, c, n) == 0;
}

/* Sets the check's result; the output is formatted like printf. */
static inline void tribune_result(exports_tribune_plugin_check_check_result_t *ret,
                                  tribune_plugin_types_check_status_t status,
                                  const char *fmt, ...) {
  char buf[4096];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(buf, sizeof buf, fmt, ap);
  va_end(ap);
  ret->status = status;
  health_check_string_dup(&ret->output, buf);
}

/* Logs a line into the agent's log (needs `log = true` in plugin.toml). */
static inline void tribune_log(tribune_plugin_log_level_t level, const char *fmt, ...) {
  char buf[1024];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(buf, sizeof buf, fmt, ap);
  va_end(ap);
  health_check_string_t s;
  health_check_string_set(&s, buf);
  tribune_plugin_log_log(level, &s);
}

#endif
