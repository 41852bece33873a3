/**
 * The firmware version this agent reports (`state.fw`) and checks with
 * `GET /iot/update?version=`. Bump it with each release of device/; the
 * endpoint's FIRMWARE_VERSION (wrangler.toml) names the newest one.
 */
export const FW_VERSION = "1.0.0";
