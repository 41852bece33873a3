// onoff is an optional native dependency (npm skips it without a C/C++ toolchain), so
// type-checking must not need it: this declares the part of its API the LED uses
// (node_modules/onoff/onoff.d.ts: "class Gpio", "static readonly accessible").
declare module "onoff" {
  export type BinaryValue = 0 | 1;
  export class Gpio {
    constructor(gpio: number, direction: "in" | "out" | "high" | "low");
    static readonly accessible: boolean;
    writeSync(value: BinaryValue): void;
    unexport(): void;
  }
}
