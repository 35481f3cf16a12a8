"""An example health check in Python: the status comes from the check's config
({"status": "warning"}), the output says hello. Build:
    sdk/python/build.sh examples/plugins/python out.wasm
"""
from tribune_plugin import HealthCheck, critical, passing, warning


class Check(HealthCheck):
    def run(self, request, config):
        status = config.get("status", "passing")
        output = f"hello from Python: check {request.check_id}, config {config}"
        if status == "critical":
            return critical(output)
        if status == "warning":
            return warning(output)
        return passing(output)
