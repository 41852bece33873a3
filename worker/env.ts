/** Typed access to the Worker's bindings beyond what `wrangler types` generates. */
import type { DeviceRoom } from "../party/device-room";

export type AppEnv = { Bindings: Env };

/**
 * A device's room by name. Straight `getByName`, not partyserver's
 * getServerByName: that first sends the room a setName() round trip on every
 * call, and the room already knows its name (ctx.id.name, as `this.name`).
 */
export function room(env: Env, id: string): DurableObjectStub<DeviceRoom> {
  return env.DEVICE_ROOM.getByName(id);
}
