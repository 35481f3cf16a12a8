// An example health check in JavaScript: the status comes from the check's config
// ({"status": "warning"}), the output says hello. Build:
//     sdk/js/build.sh examples/plugins/js out.wasm
import { critical, healthCheck, passing, warning } from "./tribune-plugin.js";

export const check = healthCheck((request, config) => {
  const output = `hello from JavaScript: check ${request.checkId}, config ${JSON.stringify(config)}`;
  switch (config.status) {
    case "critical":
      return critical(output);
    case "warning":
      return warning(output);
    default:
      return passing(output);
  }
});
