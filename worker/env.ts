/** Typed access to the Worker's bindings beyond what `wrangler types` generates. */
import type { DeviceRoom } from "../party/device-room";
import type { FleetRegistry } from "../party/fleet";

export type AppEnv = { Bindings: Env };

export function fleet(env: Env): DurableObjectStub<FleetRegistry> {
  return env.FLEET.get(env.FLEET.idFromName("main"));
}

/**
 * A device's room by name. Straight `getByName`, not partyserver's
 * getServerByName: that first sends the room a setName() round trip on every
 * call, and the room already knows its name (ctx.id.name, as `this.name`).
 */
export function room(env: Env, id: string): DurableObjectStub<DeviceRoom> {
  return env.DEVICE_ROOM.getByName(id);
}
