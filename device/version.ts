/**
 * The firmware version this agent reports (`state.fw`) and checks with
 * `GET /iot/update?version=`. Bump it with each release of device/; the
 * endpoint's FIRMWARE_VERSION (wrangler.toml) names the newest one.
 */
export const FW_VERSION: string = typeof __IOT_FW_VERSION__ === "string" ? __IOT_FW_VERSION__ : "1.0.0";

/** Set by `npm run release` when it bundles a release (scripts/build-device.mjs, FW_VERSION). */
declare const __IOT_FW_VERSION__: string | undefined;
