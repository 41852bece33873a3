/**
 * FleetRegistry: one Durable Object ("main") that knows every device and its
 * presence, for `GET /api/devices` and the dashboard's fleet view
 * (`/parties/fleet/main`). Rooms push changes to it; it never polls them.
 *
 * It holds summaries only. Each device's readings and commands stay in its
 * own DeviceRoom, so the registry is not on the hot path of a reading.
 */
import { Server, type Connection, type WSMessage } from "partyserver";
import { admitSocket, ensureNonceTable } from "./admission";
import { PING, PONG, errorMessage, type DeviceSummary, type ToFleetDashboardMessage } from "./protocol";
import type { FleetPatch } from "./device-room";

type DeviceRow = {
  id: string;
  online: number;
  last_seen: number | null;
  ip: string | null;
  fw: string | null;
  scale: string | null;
  temperature: number | null;
  reading_ts: number | null;
  last_seq: number | null;
  registered_at: number;
};

export class FleetRegistry extends Server<Env> {
  static options = { hibernate: true };

  constructor(ctx: DurableObjectState, env: Env) {
    super(ctx, env);
    ctx.storage.sql.exec(`CREATE TABLE IF NOT EXISTS devices (
      id TEXT PRIMARY KEY, online INTEGER NOT NULL DEFAULT 0, last_seen INTEGER, ip TEXT, fw TEXT,
      scale TEXT, temperature REAL, reading_ts INTEGER, last_seq INTEGER, registered_at INTEGER NOT NULL)`);
    ensureNonceTable(ctx.storage.sql);
    // Dashboards may ping to find out their socket is half-open; answered without waking the registry.
    ctx.setWebSocketAutoResponse(new WebSocketRequestResponsePair(PING, PONG));
  }

  /** Each ticket opens one fleet socket only (see party/admission.ts). */
  async fetch(request: Request): Promise<Response> {
    return admitSocket(request, this.ctx.storage.sql) ?? super.fetch(request);
  }

  onConnect(connection: Connection): void {
    send(connection, { type: "fleet", devices: this.list() });
  }

  onMessage(connection: Connection, _message: WSMessage): void {
    // The fleet socket is read-only: commands go to a device's own room.
    send(connection, errorMessage("read_only", "the fleet socket only sends; open a device room to send commands"));
  }

  // -------------------------------------------------------------------------
  // RPC
  // -------------------------------------------------------------------------

  /** Make a device known (registration, provisioning). Idempotent. */
  register(id: string, ip: string | null = null): DeviceSummary {
    this.ctx.storage.sql.exec(
      `INSERT INTO devices (id, ip, registered_at) VALUES (?, ?, ?)
       ON CONFLICT(id) DO UPDATE SET ip = COALESCE(excluded.ip, devices.ip)`,
      id,
      ip,
      Date.now(),
    );
    return this.#changed(id);
  }

  /** A room's latest summary. Registers the device if it was not known yet. */
  update(id: string, patch: FleetPatch): DeviceSummary {
    this.ctx.storage.sql.exec(
      `INSERT INTO devices (id, online, last_seen, ip, fw, scale, temperature, reading_ts, last_seq, registered_at)
       VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
       ON CONFLICT(id) DO UPDATE SET online = excluded.online, last_seen = excluded.last_seen,
         ip = COALESCE(excluded.ip, devices.ip), fw = COALESCE(excluded.fw, devices.fw),
         scale = COALESCE(excluded.scale, devices.scale),
         temperature = COALESCE(excluded.temperature, devices.temperature),
         reading_ts = COALESCE(excluded.reading_ts, devices.reading_ts),
         last_seq = COALESCE(excluded.last_seq, devices.last_seq)`,
      id,
      patch.online ? 1 : 0,
      patch.lastSeen,
      patch.ip,
      patch.fw,
      patch.scale,
      patch.temperature,
      patch.readingTs,
      patch.lastSeq,
      Date.now(),
    );
    return this.#changed(id);
  }

  get(id: string): DeviceSummary | null {
    const row = this.ctx.storage.sql.exec<DeviceRow>("SELECT * FROM devices WHERE id = ?", id).toArray()[0];
    return row ? summaryFromRow(row) : null;
  }

  list(): DeviceSummary[] {
    return this.ctx.storage.sql.exec<DeviceRow>("SELECT * FROM devices ORDER BY id").toArray().map(summaryFromRow);
  }

  /** Forget a device (its room keeps its data until deleted separately). */
  remove(id: string): boolean {
    return this.ctx.storage.sql.exec("DELETE FROM devices WHERE id = ?", id).rowsWritten > 0;
  }

  #changed(id: string): DeviceSummary {
    const device = this.get(id)!;
    const text = JSON.stringify({ type: "device", device } satisfies ToFleetDashboardMessage);
    // The runtime's list, not partyserver's getConnections(): that reads every socket's attachment per update.
    for (const ws of this.ctx.getWebSockets()) {
      if (ws.readyState !== WebSocket.OPEN) continue;
      try {
        ws.send(text);
      } catch {
        // A closing fleet socket: it will not miss anything it could still show.
      }
    }
    return device;
  }
}

function summaryFromRow(row: DeviceRow): DeviceSummary {
  return {
    id: row.id,
    online: row.online === 1,
    lastSeen: row.last_seen,
    ip: row.ip,
    fw: row.fw,
    scale: row.scale === "F" || row.scale === "C" ? row.scale : null,
    temperature: row.temperature,
    readingTs: row.reading_ts,
    lastSeq: row.last_seq,
    registeredAt: row.registered_at,
  };
}

function send(connection: Connection, msg: ToFleetDashboardMessage | ReturnType<typeof errorMessage>): void {
  try {
    connection.send(JSON.stringify(msg));
  } catch {
    // Closed before we answered: nothing to tell it.
  }
}

/**
 * The fleet registry shard that holds a device. Rooms and the Worker both
 * reach the registry only through this, so the sharding lives in one place.
 */
export function fleetFor(env: Env, _deviceId: string): DurableObjectStub<FleetRegistry> {
  return env.FLEET.get(env.FLEET.idFromName("main"));
}
