// Tribune plugin SDK for JavaScript (componentize-js).
//
// A plugin is one ES module that exports the interface of its world. For a health
// check:
//
//     import { healthCheck, passing } from "./tribune-plugin.js";
//     export const check = healthCheck((request, config) => passing(`hello ${request.checkId}`));
//
// Build it with `sdk/js/build.sh APP_DIR OUT.wasm` (see sdk/README.md). `run` receives the
// request (checkId, serviceId, config, timeoutMs) and the check's `wasm.config`
// decoded; anything it throws becomes a critical result whose output names it. A
// refused capability throws an Error whose message is the host's sentence.

import { log as hostLog } from "tribune:plugin/log@0.1.0";
import { pluginConfig as hostPluginConfig } from "tribune:plugin/config@0.1.0";
import { remainingMs as hostRemainingMs } from "tribune:plugin/clock@0.1.0";
import { fetch as hostFetch } from "tribune:plugin/http@0.1.0";
import { request as hostTcp } from "tribune:plugin/tcp@0.1.0";

export const SDK_VERSION = "0.1.0";

export const passing = (output) => ({ status: "passing", output: String(output) });
export const warning = (output) => ({ status: "warning", output: String(output) });
export const critical = (output) => ({ status: "critical", output: String(output) });

/** One line in the agent's log (needs `log = true` in plugin.toml). */
export function log(message, level = "info") {
  hostLog(level, String(message));
}

/** The plugin-wide configuration (`plugins[].config`), decoded; `{}` if none. */
export function pluginConfig() {
  return JSON.parse(hostPluginConfig()) ?? {};
}

/** Milliseconds left before the agent interrupts this call. */
export function remainingMs() {
  return hostRemainingMs();
}

// A `result<_, host-error>` import throws; its payload is `{tag, val}`.
function hostCall(f) {
  try {
    return f();
  } catch (e) {
    const p = e && e.payload;
    if (p && p.tag) {
      throw new Error(`${p.tag}: ${p.val}`);
    }
    throw e;
  }
}

/** GET (or another method) over the `http` capability: `{status, headers, body}`. */
export function httpFetch(url, { method = "GET", headers = {}, body = "", timeoutMs = 0 } = {}) {
  const r = hostCall(() =>
    hostFetch({
      method,
      url,
      headers: Object.entries(headers),
      body: new TextEncoder().encode(body),
      timeoutMs,
    }),
  );
  return { status: r.status, headers: Object.fromEntries(r.headers), body: new TextDecoder().decode(r.body) };
}

/** One TCP exchange over the `tcp` capability; returns the bytes read as text. */
export function tcpExchange(address, { send = "", until = "", maxBytes = 0, timeoutMs = 0 } = {}) {
  const enc = new TextEncoder();
  const bytes = hostCall(() =>
    hostTcp({ address, send: enc.encode(send), readUntil: enc.encode(until), maxBytes, timeoutMs }),
  );
  return new TextDecoder().decode(bytes);
}

/** The `check` interface from a function `(request, config) => result`. */
export function healthCheck(run) {
  return {
    check(request) {
      try {
        const config = request.config ? JSON.parse(request.config) : {};
        return run(request, config);
      } catch (e) {
        return critical(`${e && e.name ? e.name : "Error"}: ${e && e.message ? e.message : e}`);
      }
    },
  };
}
