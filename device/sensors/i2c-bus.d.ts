// i2c-bus ships no types; this declares the part of its API the TMP102 driver uses
// (node_modules/i2c-bus/README.md: "openPromisified", "PromisifiedBus").
declare module "i2c-bus" {
  export interface PromisifiedBus {
    readI2cBlock(address: number, command: number, length: number, buffer: Buffer): Promise<{ bytesRead: number; buffer: Buffer }>;
    writeI2cBlock(address: number, command: number, length: number, buffer: Buffer): Promise<{ bytesWritten: number; buffer: Buffer }>;
    close(): Promise<void>;
  }
  export function openPromisified(busNumber: number, options?: { forceAccess?: boolean }): Promise<PromisifiedBus>;
  const i2c: { openPromisified: typeof openPromisified };
  export default i2c;
}
