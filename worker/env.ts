/** Typed access to the Worker's bindings beyond what `wrangler types` generates. */
import { getServerByName } from "partyserver";
import type { DeviceRoom } from "../party/device-room";
import type { FleetRegistry } from "../party/fleet";

export type AppEnv = { Bindings: Env };

export function fleet(env: Env): DurableObjectStub<FleetRegistry> {
  return env.FLEET.get(env.FLEET.idFromName("main"));
}

export function room(env: Env, id: string): Promise<DurableObjectStub<DeviceRoom>> {
  return getServerByName(env.DEVICE_ROOM, id);
}
