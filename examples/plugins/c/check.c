/*
 * An example health check in C: passes when the check's config says
 * {"status": "passing"} (the default), warns or fails when it says so, and
 * reports how much time it was given. Build: sdk/c/build.sh examples/plugins/c out.wasm
 */
#include "health_check.h"
#include "tribune_check.h"

void exports_tribune_plugin_check_check(exports_tribune_plugin_check_check_request_t *request,
                                        exports_tribune_plugin_check_check_result_t *ret) {
  char *config = tribune_str_dup(&request->config);
  char *id = tribune_str_dup(&request->check_id);
  tribune_plugin_types_check_status_t status = TRIBUNE_PASSING;
  if (config && strstr(config, "\"critical\"")) {
    status = TRIBUNE_CRITICAL;
  } else if (config && strstr(config, "\"warning\"")) {
    status = TRIBUNE_WARNING;
  }
  tribune_log(TRIBUNE_PLUGIN_TYPES_LEVEL_DEBUG, "c check %s running", id ? id : "?");
  tribune_result(ret, status, "hello from C: check %s, %u ms to spare, config %s",
                 id ? id : "?", (unsigned)request->timeout_ms, config ? config : "{}");
  free(config);
  free(id);
  exports_tribune_plugin_check_check_request_free(request);
}
