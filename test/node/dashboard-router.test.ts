import { describe, expect, it } from "vitest";
import { devicePath, parseRoute } from "../../dashboard/src/router";

describe("dashboard routes", () => {
  it("maps / to the fleet and /devices/<id> to that device, round-tripping the id", () => {
    expect(parseRoute("/")).toEqual({ view: "fleet" });
    expect(parseRoute("/devices/pi-kitchen")).toEqual({ view: "device", id: "pi-kitchen" });
    expect(parseRoute("/devices/pi-kitchen/")).toEqual({ view: "device", id: "pi-kitchen" });
    expect(parseRoute(devicePath("iot-192-168-1-19"))).toEqual({ view: "device", id: "iot-192-168-1-19" });
  });

  it("maps /updates (and /rollouts, the API's word) to releases and rollouts", () => {
    expect(parseRoute("/updates")).toEqual({ view: "updates" });
    expect(parseRoute("/updates/")).toEqual({ view: "updates" });
    expect(parseRoute("/rollouts")).toEqual({ view: "updates" });
    expect(parseRoute("/updates/extra")).toEqual({ view: "fleet" });
  });

  it("shows the fleet for paths it does not know, and for broken escapes", () => {
    expect(parseRoute("/nope")).toEqual({ view: "fleet" });
    expect(parseRoute("/devices/%E0%A4%A")).toEqual({ view: "fleet" });
  });
});
